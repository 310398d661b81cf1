"""Stage: publish the serving file for BI tools (Metabase, Superset, DBeaver).

Aggregates only (no NIK in any form, no name), written with DuckDB's storage compatibility for
1.1 clients into a temporary file beside the target, checked, then swapped in with an atomic
rename: a reader sees the previous file or the new one, never a half-written one.
"""

import os
import uuid
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.resources import WAREHOUSE_WRITER, PermanentError, Settings, Warehouse
from schemas.tables import SERVING_TABLES

STORAGE_COMPATIBILITY = "v1.1.0"
FORBIDDEN = {"nik", "nama", "nik_hmac", "nik_masked", "kpj"}


class PublishError(PermanentError):
    pass


def _suppress(con, k: int) -> int:
    if k <= 0:
        return 0
    return con.execute(
        "UPDATE coverage_by_region SET active = NULL, inactive = NULL, penetration_pct = NULL, "
        "suppressed = true WHERE active > 0 AND active < ?", [k]).fetchone()[0]


def _check(path: Path, expected: dict[str, int]) -> None:
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


def publish(warehouse: Warehouse, target: Path, suppress_k: int = 0) -> dict[str, int]:
    """Write the serving file atomically; return rows per table."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    with warehouse.connect() as con:
        data = {t.name: con.execute(
                    f"SELECT {', '.join(t.column_names())} FROM {t.name} "
                    f"ORDER BY {', '.join(t.key)}").to_arrow_table()
                for t in SERVING_TABLES}
    try:
        out = duckdb.connect(str(tmp), config={
            "storage_compatibility_version": STORAGE_COMPATIBILITY})
        try:
            for t in SERVING_TABLES:
                out.execute(t.ddl(serving=True))
                out.register("source", data[t.name])
                extra = ", false" if len(t.column_names(True)) > len(t.column_names()) else ""
                out.execute(f"INSERT INTO {t.name} SELECT *{extra} FROM source")
                out.unregister("source")
            suppressed = _suppress(out, suppress_k)
            out.execute("CHECKPOINT")
        finally:
            out.close()
        expected = {name: table.num_rows for name, table in data.items()}
        _check(tmp, expected)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            if leftover.exists():
                leftover.unlink()
    return {**expected, "suppressed_cells": suppressed}


@dg.asset(
    kinds={"duckdb"}, group_name="serving", **WAREHOUSE_WRITER,
    deps=[t.name for t in SERVING_TABLES],
    description="The serving DuckDB file for BI tools: aggregate tables only, readable by "
                "DuckDB 1.1 clients, replaced atomically.",
)
def serving_file(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: Settings):
    counts = publish(warehouse, Path(settings.serving), settings.suppress_k)
    context.log.info(f"published {settings.serving}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(Path(settings.serving).resolve())),
        "dagster/row_count": sum(v for k, v in counts.items() if k != "suppressed_cells"),
        **{f"rows_{k}": v for k, v in counts.items()},
    })
