"""Dagster: the asset graph, partitions, kinds, code versions, metadata previews and checks are
really there, in the code location and in the event log of a real run."""
from __future__ import annotations

import dagster as dg
import pytest

from harness import TEST_KEY, pipeline
from assets.resources import Settings, Warehouse
from pipelines.definitions import build_definitions

# (asset, its parents, its partitions definition) as designed; written out by hand
GRAPH = {
    "region_reference": (set(), None),
    "potential": ({"region_reference"}, None),
    "targets": ({"region_reference"}, None),
    "published": (set(), None),
    "enrollment_rows": ({"region_reference"}, "deliveries"),
    "load_log": ({"enrollment_rows"}, "snapshots"),
    "quarantine": ({"enrollment_rows"}, "snapshots"),
    "enrollment": ({"enrollment_rows"}, "snapshots"),
    "coverage_by_tier": ({"enrollment", "potential", "region_reference"}, "snapshots"),
    "coverage_by_region": ({"enrollment", "potential", "region_reference"}, "snapshots"),
    "coverage_national": ({"enrollment", "load_log", "potential", "region_reference"},
                          "snapshots"),
    "coverage_trend_tier": ({"coverage_by_tier", "enrollment", "load_log"}, "snapshots"),
    "coverage_trend_region": ({"coverage_by_region", "enrollment", "load_log"}, "snapshots"),
    "coverage_trend_national": ({"coverage_national", "enrollment", "load_log"}, "snapshots"),
    "target_progress": ({"coverage_by_tier", "coverage_by_region", "coverage_national",
                         "targets"}, None),
    "reconciliation": ({"coverage_by_tier", "coverage_by_region", "coverage_national",
                        "published"}, None),
    "published_consistency": ({"published"}, None),
    "serving_file": ({"coverage_by_tier", "coverage_by_region", "coverage_national",
                      "coverage_trend_tier", "coverage_trend_region", "coverage_trend_national",
                      "load_log", "target_progress", "reconciliation", "published_consistency"},
                     None),
    "report_html": ({"serving_file"}, None),
}


@pytest.fixture(scope="module")
def defs():
    return build_definitions(Settings(), Warehouse(database="unused.duckdb"))


def test_every_stage_is_an_asset_with_its_lineage_and_partitions(defs):
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(GRAPH)
    for name, (parents, partitions) in GRAPH.items():
        node = graph.get(dg.AssetKey(name))
        assert {p.to_user_string() for p in node.parent_keys} == parents, name
        assert getattr(node.partitions_def, "name", None) == partitions, name


def test_every_asset_has_a_code_version_kinds_and_a_group(defs):
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.code_version, key
        assert node.kinds, key
        assert node.group_name != "default", key
    assert graph.get(dg.AssetKey("enrollment")).kinds == {"parquet"}
    assert "duckdb" in graph.get(dg.AssetKey("coverage_by_tier")).kinds


def test_the_report_follows_the_serving_file_by_automation(defs):
    node = defs.resolve_asset_graph().get(dg.AssetKey("report_html"))
    assert node.automation_condition is not None
    assert node.automation_condition.get_label() == "eager"
    assert set(node.kinds) == {"html"}


def test_tables_carry_their_column_schema(defs):
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    schema = specs["coverage_by_tier"].metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns][:3] == ["snapshot_date", "tier", "tier_label"]
    assert specs["coverage_by_tier"].metadata["dagster/table_name"] == \
        "warehouse.coverage_by_tier"
    assert specs["enrollment"].metadata["dagster/table_name"] == "lake.enrollment"
    nik = [c for c in specs["enrollment_rows"].metadata["dagster/column_schema"].columns
           if "nik" in c.name]
    assert [c.name for c in nik] == ["nik_hmac"]   # never a plain NIK column
    assert "dagster/column_schema" not in specs["serving_file"].metadata


def test_a_run_records_row_counts_previews_and_checks():
    with pipeline("dagster") as p:
        p.landing.potential("2021-01-01", ["KL,,100,RDP"])
        p.landing.enrollment("2021-10-31", "32.csv", [
            "3201014101900001,K1,A,PU,KL,,N1,X,2020-01-15,2021-10",
            "3201014101900002,K2,B,PU,KL,,N1,X,2020-01-15,2021-10"])
        p.landing.enrollment("2021-10-31", "33.csv", [
            "3301014101900003,K3,C,PU,KL,,N1,X,2020-01-15,2021-10",
            "not-a-nik,K4,D,PU,KL,,N1,X,2020-01-15,2021-10"])
        assert p.run().code == 0
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DAGSTER_HOME", str(p.base / "dagster_home"))
            mp.setenv("CAKUPAN_HMAC_KEY", TEST_KEY)
            instance = dg.DagsterInstance.get()
            latest = lambda name: instance.get_latest_materialization_event(  # noqa: E731
                dg.AssetKey(name)).asset_materialization
            tier = latest("coverage_by_tier")
            assert tier.partition == "2021-10-31"
            assert tier.metadata["dagster/row_count"].value == 6   # one row per tier
            preview = tier.metadata["tiers"].value
            assert "| KL |" in preview and "| 3 |" in preview
            assert latest("quarantine").metadata["dagster/row_count"].value == 1
            assert instance.get_materialized_partitions(dg.AssetKey("enrollment_rows")) == {
                "2021-10-31|32", "2021-10-31|33"}
            [rows] = instance.fetch_materializations(dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("enrollment_rows"), asset_partitions=["2021-10-31|33"]),
                limit=1).records
            meta = rows.asset_materialization.metadata
            assert meta["dagster/row_count"].value == 1 and meta["rows_quarantined"].value == 1
            assert "| enrollment/2021-10-31/33.csv | loaded |" in meta["files"].value
            checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey("coverage_national"), "matches_schema")])
            assert list(checks.values())[0].status.value == "SUCCEEDED"
            serving = latest("serving_file")
            assert serving.metadata["storage_version"].value == "v1.1.0"
            instance.dispose()
