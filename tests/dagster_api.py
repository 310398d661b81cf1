"""Driving Dagster the way its UI and daemon do, in this process: the GraphQL API the UI calls
(launch, re-execute), the backfill daemon's iteration, sensor evaluation. Runs launched here
execute synchronously in this process (``InProcessRunLauncher``) against the pipeline's own
DAGSTER_HOME. Nothing is mocked: these are Dagster's own code paths."""
from __future__ import annotations

import contextlib
import logging
import os

import dagster as dg

from pipelines.runner import _instance, _workspace

REPOSITORY = "__repository__"


@contextlib.contextmanager
def dagster_env(pipeline):
    """CAKUPAN_* and DAGSTER_HOME as `cakupan run` would set them for ``pipeline``."""
    from harness import TEST_KEY

    with contextlib.ExitStack() as stack:
        mp = stack.enter_context(__import__("pytest").MonkeyPatch.context())
        mp.setenv("CAKUPAN_LANDING", str(pipeline.landing.root))
        mp.setenv("CAKUPAN_WAREHOUSE", str(pipeline.warehouse))
        mp.setenv("CAKUPAN_SERVING", str(pipeline.serving))
        mp.setenv("DAGSTER_HOME", str(pipeline.base / "dagster_home"))
        mp.setenv("CAKUPAN_HMAC_KEY", TEST_KEY)
        yield


@contextlib.contextmanager
def workspace(pipeline):
    """(instance, request context) with the code location loaded in process."""
    from pipelines.instance import dagster_home

    with dagster_env(pipeline):
        home = dagster_home(pipeline.warehouse)
        instance = _instance(home)
        with _workspace(instance) as ctx:
            yield instance, ctx


def graphql(ctx, query: str, variables: dict | None = None) -> dict:
    from dagster_graphql.test.utils import execute_dagster_graphql

    result = execute_dagster_graphql(ctx.create_request_context(), query, variables or {})
    assert not result.errors, result.errors
    return result.data


def launch(ctx, assets: list[str], partition: str | None = None,
           checks: list[tuple[str, str]] | None = None) -> str:
    """Launch a run of ``assets`` (and ``checks``) for ``partition`` as the UI's Materialize
    button does (launchPipelineExecution on the implicit asset job); return its run id."""
    from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION

    selector = {"repositoryLocationName": "cakupan", "repositoryName": REPOSITORY,
                "pipelineName": "__ASSET_JOB",
                "assetSelection": [{"path": [a]} for a in assets],
                "assetCheckSelection": [{"assetKey": {"path": [a]}, "name": n}
                                        for a, n in (checks or [])]}
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    data = graphql(ctx, LAUNCH_PIPELINE_EXECUTION_MUTATION, {"executionParams": {
        "selector": selector, "executionMetadata": {"tags": tags},
        "runConfigData": {"loggers": {"console": {}}}}})
    out = data["launchPipelineExecution"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def reexecute(ctx, run_id: str, strategy: str = "FROM_FAILURE") -> str:
    from dagster_graphql.client.query import LAUNCH_PIPELINE_REEXECUTION_MUTATION

    data = graphql(ctx, LAUNCH_PIPELINE_REEXECUTION_MUTATION, {
        "reexecutionParams": {"parentRunId": run_id, "strategy": strategy}})
    out = data["launchPipelineReexecution"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def drain_backfills(ctx, rounds: int = 40) -> None:
    """Run the backfill daemon's iteration until no backfill is in progress."""
    from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
    from dagster._daemon.backfill import execute_backfill_iteration

    instance = ctx.instance
    log = logging.getLogger("tests.backfill")
    for _ in range(rounds):
        open_ = instance.get_backfills(filters=BulkActionsFilter(
            statuses=[BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING,
                      BulkActionStatus.FAILING]))
        if not open_:
            return
        list(execute_backfill_iteration(ctx, log))
    raise AssertionError("backfills still in progress")


def submit_sensor_result(ctx, result: dg.SensorResult) -> list[str]:
    """Do with a sensor's result what the sensor daemon does: add the dynamic partitions and
    create the backfills it requests. Returns the backfill ids."""
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    instance = ctx.instance
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    ids = []
    for rr in result.run_requests or []:
        backfill_id = make_new_backfill_id()
        instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
            backfill_id=backfill_id, dynamic_partitions_store=instance,
            backfill_timestamp=get_current_timestamp(), asset_graph_subset=rr.asset_graph_subset,
            tags=rr.tags or {}, title=None, description=None, run_config=rr.run_config))
        ids.append(backfill_id)
    return ids


def sensor_context(ctx, name: str, cursor: str | None = None):
    from pipelines.definitions import defs

    definitions = defs()
    sensor = definitions.get_sensor_def(name)
    context = dg.build_sensor_context(
        instance=ctx.instance, cursor=cursor, repository_def=definitions.get_repository_def(),
        resources=dict(definitions.resources))
    return sensor, context


def env_flag(name: str) -> bool:
    return bool(os.environ.get(name))
