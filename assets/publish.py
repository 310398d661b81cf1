"""Stage: publish the serving file for BI tools (Metabase, Superset, DBeaver, Rill, Grafana).

Aggregates only (no NIK in any form, no name). Before anything is written, every blocking check
of every published table runs again over the data now in the warehouse: a failing one stops the
publish, whatever run it failed in, until the data is repaired, and the serving file keeps its
last good state. The file is written with DuckDB's storage compatibility for 1.1 clients into a
temporary file beside the target, self-documented (``COMMENT ON`` every table and column, from
``schemas/tables.py``), checked, flushed to disk and swapped in with an atomic rename: a reader
sees the previous file or the new one, never a half-written one.
"""

import os
import uuid
from pathlib import Path

import dagster as dg
import duckdb

from readers.storage import fsync_dir, sweep_temporaries, versions_of
from schemas.tables import SERVING_TABLES, SERVING_VIEWS, literal, quote

from assets import checks as generated
from assets import versions
from assets.resources import PermanentError, Settings, Warehouse

STORAGE_COMPATIBILITY = "v1.1.0"
FORBIDDEN = {"nik", "nama", "nik_hmac", "person", "nik_masked", "kpj"}
CODE_VERSION = versions.code_version("serving", STORAGE_COMPATIBILITY,
                                     [t.ddl(True) for t in SERVING_TABLES], SERVING_VIEWS)


class PublishError(PermanentError):
    pass


def version(store: str, table_versions: dict[str, dict[str, str]], suppress_k: int) -> str:
    """From every published partition's version (asset -> partition -> version)."""
    return versions.of_inputs(CODE_VERSION, store, suppress_k=suppress_k, tables=sorted(
        (asset, p, v) for asset, parts in table_versions.items() for p, v in parts.items()))


def _suppress(con, k: int) -> int:
    """Small-cell suppression (serving only): region cells with 0 < active < k lose their counts;
    so do the regional flows and target rows that would reveal them (a flow row whose active or
    active_prev is small, a target row whose active is small). Returns the coverage cells hidden."""
    if k <= 0:
        return 0
    small = "(active > 0 AND active < $k)"
    hidden = con.execute(
        "UPDATE coverage_by_region SET active = NULL, inactive = NULL, penetration_pct = NULL, "
        f"uncovered = NULL, uncovered_rank = NULL, suppressed = true WHERE {small}",
        {"k": k}).fetchone()[0]
    con.execute(
        "UPDATE coverage_trend_region SET active = NULL, active_prev = NULL, gained = NULL, "
        "lost = NULL, active_change = NULL, penetration_change_pp = NULL "
        f"WHERE {small} OR (active_prev > 0 AND active_prev < $k)", {"k": k})
    con.execute(
        "UPDATE target_progress SET active = NULL, penetration_pct = NULL, people_to_target = "
        f"NULL, uncovered = NULL WHERE region_level IS NOT NULL AND {small}", {"k": k})
    return hidden


def _check_file(path: Path, expected: dict[str, int]) -> None:
    con = duckdb.connect(str(path), read_only=True)
    try:
        for t in SERVING_TABLES:
            cols = [r[0] for r in con.execute(f"DESCRIBE {t.name}").fetchall()]
            if cols != t.column_names(serving=True):
                raise PublishError(f"serving table {t.name} has columns {cols}")
            if FORBIDDEN & set(cols):
                raise PublishError(f"serving table {t.name} holds personal data columns")
            n = con.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0]
            if n != expected[t.name]:
                raise PublishError(f"serving table {t.name}: {n} rows, expected {expected[t.name]}")
    finally:
        con.close()


def blocking_failures(con, ctx: dict | None = None) -> list[generated.Finding]:
    """Every blocking check of every published table, over all of its rows, that fails now."""
    findings = generated.evaluate(con, [t.name for t in SERVING_TABLES], None, ctx)
    return [f for f in findings if f.blocking and not f.passed and not f.warn]


def write_serving(data: dict, target: Path, suppress_k: int = 0) -> dict[str, int]:
    """Write ``data`` (table -> Arrow) as the serving file at ``target``, atomically."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = duckdb.connect(str(tmp), config={
            "storage_compatibility_version": STORAGE_COMPATIBILITY})
        try:
            for t in SERVING_TABLES:
                out.execute(t.ddl(serving=True))
                out.register("source", data[t.name])
                extra = ", false" if len(t.column_names(True)) > len(t.column_names()) else ""
                out.execute(f"INSERT INTO {t.name} SELECT *{extra} FROM source")
                out.unregister("source")
                for statement in t.comments(serving=True):
                    out.execute(statement)
            for name, (description, sql, columns) in SERVING_VIEWS.items():
                out.execute(f"CREATE VIEW {name} AS {sql}")
                out.execute(f"COMMENT ON VIEW {name} IS {literal(description)}")
                for column, text in columns.items():
                    out.execute(f"COMMENT ON COLUMN {name}.{column} IS {literal(text)}")
            suppressed = _suppress(out, suppress_k)
            out.execute("CHECKPOINT")
        finally:
            out.close()
        expected = {name: table.num_rows for name, table in data.items()}
        _check_file(tmp, expected)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except (OSError, duckdb.Error) as exc:   # disk full surfaces as IO, transaction or fatal
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise PublishError(f"cannot write the serving file {target}: {reason} "
                           "(the previous serving file is kept)") from None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            try:
                leftover.unlink(missing_ok=True)
            except OSError:   # its folder is not writable, or not a folder: nothing was made
                pass
    return {**expected, "suppressed_cells": suppressed}


def served_versions(con, days) -> dict[str, dict[str, str]]:
    """The recorded versions of every published table partition of the current snapshots."""
    wanted = {str(d) for d in days} | {""}
    return {t.name: {p: v for p, v in versions_of(con, t.name).items() if p in wanted}
            for t in SERVING_TABLES}


@dg.asset(
    kinds={"duckdb"}, group_name="serving", code_version=CODE_VERSION,
    deps=[t.name for t in SERVING_TABLES],
    description="The serving DuckDB file for BI tools: aggregate tables only, documented, "
                "readable by DuckDB 1.1 clients, replaced atomically, published only while every "
                "blocking check of its tables passes on the data now in the warehouse.",
)
def serving_file(context: dg.AssetExecutionContext, warehouse: Warehouse,
                 settings: Settings) -> dg.MaterializeResult:
    from readers.landing import scan

    from assets.history import snapshot_days

    store = warehouse.store_id()
    target = settings.serving_path
    manifests = warehouse.lake.all_manifests()
    days = snapshot_days(scan(settings.landing_path), manifests)
    with warehouse.connect() as con:
        failing = blocking_failures(con, {"manifests": manifests})
        if failing:
            raise PublishError(
                "not published, the serving file keeps its previous state: blocking check(s) "
                + ", ".join(f.label for f in failing) + " fail on the data in the warehouse")
        data = {t.name: con.sql(
                    f"SELECT {t.select_list()} FROM {t.name} "
                    f"ORDER BY {', '.join(quote(k) for k in t.key)}").to_arrow_table()
                for t in SERVING_TABLES}
        version_ = version(store, served_versions(con, days), settings.suppress_k)
    counts = write_serving(data, target, settings.suppress_k)
    context.log.info(f"published {target}")
    # housekeeping of the store it publishes, on every path (CLI and daemon): temporaries a
    # killed process left, untouched for an hour (a live run's are newer)
    swept = sweep_temporaries(warehouse.lake.root,
                              beside=[warehouse.path, target, settings.report_path])
    if swept:
        context.log.info(f"removed {len(swept)} temporary file(s) left by a killed process")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version_),
        metadata={"path": dg.MetadataValue.path(str(target.resolve())),
                  "storage_version": STORAGE_COMPATIBILITY,
                  "dagster/row_count": sum(v for k, v in counts.items() if k != "suppressed_cells"),
                  **{f"rows_{k}": v for k, v in counts.items()}})
