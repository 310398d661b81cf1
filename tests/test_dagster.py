"""Dagster: the asset graph, partitions, metadata and checks are really there."""
from __future__ import annotations

import dagster as dg

from pipelines.definitions import defs

ASSETS = {"region_reference", "potential", "enrollment_rows", "quarantine", "load_log",
          "enrollment", "coverage_by_tier", "coverage_national", "coverage_by_region",
          "serving_file"}


def test_every_stage_is_an_asset_with_lineage():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS
    parents = {p.to_user_string() for p in graph.get(dg.AssetKey("coverage_by_tier")).parent_keys}
    assert parents == {"enrollment", "potential", "region_reference"}
    serving_parents = {p.to_user_string()
                       for p in graph.get(dg.AssetKey("serving_file")).parent_keys}
    assert serving_parents == {"coverage_by_tier", "coverage_national", "coverage_by_region",
                               "load_log"}


def test_tables_carry_their_column_schema():
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    schema = specs["coverage_by_tier"].metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns][:4] == ["snapshot_date", "tier", "tier_label", "active"]
    assert "dagster/column_schema" not in specs["serving_file"].metadata


def test_a_run_records_row_counts_and_checks(landing, run_cakupan):
    landing.enrollment("2021-10-31", "32.csv", [
        "3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-10",
        "3201014101900002,K2,B,PU,KL,,N1,X,2020-01-15,2021-10",
    ])
    landing.enrollment("2021-10-31", "33.csv", [
        "3301014101900003,K3,C,PU,KL,,N1,X,2020-01-15,2021-10",
    ])
    assert run_cakupan(landing).code == 0
    instance = dg.DagsterInstance.get()
    tier = instance.get_latest_materialization_event(dg.AssetKey("coverage_by_tier"))
    assert tier.asset_materialization.partition == "2021-10-31"
    assert tier.asset_materialization.metadata["dagster/row_count"].value == 6
    rows = instance.get_latest_materialization_event(dg.AssetKey("enrollment_rows"))
    assert rows.asset_materialization.partition.startswith("2021-10-31|")
    materialized = instance.get_materialized_partitions(dg.AssetKey("enrollment_rows"))
    assert {"2021-10-31|32", "2021-10-31|33"} <= materialized
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("coverage_national"), "matches_schema")])
    assert list(checks.values())[0].status.value == "SUCCEEDED"
