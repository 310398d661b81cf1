"""Reading a serving DuckDB file (read-only) for the renderers.

A table that is missing from the file (an older serving file) reads as empty, like a table with no
rows: the report then says so in words.
"""
from __future__ import annotations

from pathlib import Path

import duckdb


class ServingError(RuntimeError):
    pass


class Serving:
    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ServingError(f"no serving file at {self.path}")
        try:
            self.con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            raise ServingError(f"cannot open {self.path}: {str(exc).splitlines()[0]}") from None
        self.relations = {
            name: kind for name, kind in self.con.execute(
                "SELECT table_name, 'table' FROM duckdb_tables() WHERE NOT internal "
                "AND schema_name = 'main' UNION ALL SELECT view_name, 'view' FROM duckdb_views() "
                "WHERE NOT internal AND schema_name = 'main'").fetchall()}

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Serving":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def has(self, name: str) -> bool:
        return name in self.relations

    def columns(self, name: str) -> list[str]:
        if not self.has(name):
            return []
        return [r[0] for r in self.con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
            "AND schema_name = 'main' ORDER BY column_index", [name]).fetchall()]

    def rows(self, sql: str, params: list | None = None, needs: tuple[str, ...] = ()) -> list[dict]:
        """Rows as dicts; [] when a relation in `needs` is absent from the file."""
        if any(not self.has(n) for n in needs):
            return []
        cur = self.con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def one(self, sql: str, params: list | None = None, needs: tuple[str, ...] = ()) -> dict | None:
        out = self.rows(sql, params, needs)
        return out[0] if out else None
