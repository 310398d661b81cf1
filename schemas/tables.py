"""Every table cakupan writes, declared once.

Each :class:`Table` gives its columns (DuckDB type, nullability, description, pandera checks),
its key and whether it is published to the serving file. From it derive: the DDL of the warehouse
and the serving file, the pandera schema behind each generated asset check, Dagster's column
schema metadata and the table reference in the README (``python -m schemas.tables``).

Beyond the per-row pandera rules a table may declare rules that need other data, each turned into
its own generated asset check by :mod:`assets.checks`: ``references`` (codes must exist in a
reference table, e.g. the region vintage of the row), ``deliveries`` (a row for every delivery
of the landing zone) and ``freshness`` (the newest date is recent enough; a warning only).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandera.pandas as pa


@dataclass(frozen=True)
class Col:
    name: str
    sql_type: str
    description: str
    nullable: bool = True
    checks: tuple[pa.Check, ...] = ()
    serving_only: bool = False


@dataclass(frozen=True)
class Reference:
    """Foreign-key-like rule: every row's ``on`` columns match a row of ``table`` (pairs of
    (column here, column there)). Blocking."""
    table: str
    on: tuple[tuple[str, str], ...]
    name: str
    description: str


@dataclass(frozen=True)
class Deliveries:
    """Every delivery of the landing zone (snapshot date, province office) has a row. Blocking."""
    snapshot_column: str = "snapshot_date"
    province_column: str = "province_code"
    name: str = "has_every_delivery"


@dataclass(frozen=True)
class Freshness:
    """The newest ``column`` is at most ``days`` old (environment ``env`` overrides it).
    Not blocking: a warning."""
    column: str = "snapshot_date"
    env: str = "CAKUPAN_FRESHNESS_DAYS"
    days: int = 45
    name: str = "fresh"


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Col, ...]
    key: tuple[str, ...] = ()
    serving: bool = False
    checks: tuple[pa.Check, ...] = field(default_factory=tuple)
    references: tuple[Reference, ...] = ()
    deliveries: Deliveries | None = None
    freshness: Freshness | None = None

    def cols(self, serving: bool = False) -> list[Col]:
        return [c for c in self.columns if serving or not c.serving_only]

    def ddl(self, serving: bool = False) -> str:
        cols = ", ".join(f"{c.name} {c.sql_type}" for c in self.cols(serving))
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({cols})"

    def column_names(self, serving: bool = False) -> list[str]:
        return [c.name for c in self.cols(serving)]

    def pandera_schema(self) -> pa.DataFrameSchema:
        return pa.DataFrameSchema(
            name=self.name,
            description=self.description,
            columns={
                c.name: pa.Column(nullable=c.nullable, checks=list(c.checks),
                                  description=c.description)
                for c in self.cols()
            },
            unique=list(self.key) or None,
            checks=list(self.checks),
            strict=True,
        )


NON_NEGATIVE = (pa.Check.ge(0, error="must be >= 0"),)
# Above 100 % is possible (more active than the potential says) and is flagged, not blocked.
PCT = (pa.Check.ge(0, error="penetration below 0"),
       pa.Check.le(100, error="penetration above 100 % (flagged)", raise_warning=True))
TIER = (pa.Check.isin(["KL", "PROV", "KABKOTA", "KEC", "DESA", "RTRW"]),)


def _counts() -> tuple[Col, ...]:
    return (
        Col("active", "BIGINT", "people active (paid within the grace months)", False,
            NON_NEGATIVE),
        Col("inactive", "BIGINT", "people registered but not active", False, NON_NEGATIVE),
        Col("potential", "BIGINT", "potential workers at exactly this tier and region", True,
            NON_NEGATIVE),
        Col("penetration_pct", "DOUBLE",
            "active / potential x 100, unrounded; NULL where no potential exists", True, PCT),
    )


_SNAPSHOT = Col("snapshot_date", "DATE", "date of the enrollment extract", False)
_VINTAGE = Col("vintage", "VARCHAR", "Kemendagri reference vintage in force", False)
# A region code must exist, at its level, in the Kemendagri vintage the row was counted with.
REGION_IN_VINTAGE = Reference(
    "ref_region", (("vintage", "vintage"), ("region_code", "kode"), ("region_level", "level")),
    name="region_codes_in_vintage",
    description="every region code exists, at its level, in the row's reference vintage")
_POTENTIAL_SET = Col("potential_set", "DATE", "date of the potential set in force (NULL: none)")

COVERAGE_BY_TIER = Table(
    "coverage_by_tier", "Coverage per administrative tier and snapshot.",
    (_SNAPSHOT, Col("tier", "VARCHAR", "tier code", False, TIER),
     Col("tier_label", "VARCHAR", "tier label", False), *_counts(), _VINTAGE, _POTENTIAL_SET),
    key=("snapshot_date", "tier"), serving=True,
)

COVERAGE_NATIONAL = Table(
    "coverage_national",
    "National coverage per snapshot: each NIK once across tiers.",
    (_SNAPSHOT,
     Col("active", "BIGINT", "distinct NIKs active in at least one tier", False, NON_NEGATIVE),
     Col("active_tier_sum", "BIGINT", "sum of the tiers' active (a person with two posts counts "
         "twice)", False, NON_NEGATIVE),
     Col("inactive", "BIGINT", "distinct NIKs active in no tier", False, NON_NEGATIVE),
     Col("potential", "BIGINT", "sum of the six national tier potentials; NULL unless all six "
         "exist", True, NON_NEGATIVE),
     Col("penetration_pct", "DOUBLE", "active / potential x 100, unrounded", True, PCT),
     _VINTAGE, _POTENTIAL_SET),
    key=("snapshot_date",), serving=True, freshness=Freshness(),
    checks=(pa.Check(lambda df: df["active"] <= df["active_tier_sum"], name="active_le_tier_sum",
                     error="national active exceeds the sum of the tiers"),),
)

COVERAGE_BY_REGION = Table(
    "coverage_by_region",
    "Coverage per tier and region (province and regency/city) and snapshot.",
    (_SNAPSHOT, Col("tier", "VARCHAR", "tier code", False, TIER),
     Col("tier_label", "VARCHAR", "tier label", False),
     Col("region_level", "VARCHAR", "province or regency", False,
         (pa.Check.isin(["province", "regency"]),)),
     Col("region_code", "VARCHAR", "dotted Kemendagri code", False),
     Col("region_name", "VARCHAR", "name in the vintage in force"),
     Col("parent_code", "VARCHAR", "province of a regency; NULL for a province"),
     *_counts(), _VINTAGE, _POTENTIAL_SET,
     Col("suppressed", "BOOLEAN", "serving only: counts hidden because 0 < active < k "
         "(CAKUPAN_SUPPRESS_K)", serving_only=True)),
    key=("snapshot_date", "tier", "region_level", "region_code"), serving=True,
    references=(REGION_IN_VINTAGE,),
)

LOAD_LOG = Table(
    "load_log", "One row per delivered enrollment file and snapshot.",
    (_SNAPSHOT,
     Col("source_file", "VARCHAR", "path relative to the landing zone", False),
     Col("province_code", "VARCHAR", "province office (from the file name)"),
     Col("sha256", "VARCHAR", "sha256 of the file's bytes"),
     Col("rows_read", "BIGINT", "data rows (NULL when the file could not be read)", True,
         NON_NEGATIVE),
     Col("rows_loaded", "BIGINT", "valid rows loaded (duplicates included)", False,
         NON_NEGATIVE),
     Col("rows_rejected", "BIGINT", "rows sent to quarantine", False, NON_NEGATIVE),
     Col("status", "VARCHAR", "loaded, rejected or superseded", False,
         (pa.Check.isin(["loaded", "rejected", "superseded"]),)),
     Col("message", "VARCHAR", "why, for every rejected or superseded file"),
     Col("loaded_at", "TIMESTAMP", "when this row was written", False)),
    key=("snapshot_date", "source_file"), serving=True, deliveries=Deliveries(),
)

QUARANTINE = Table(
    "quarantine",
    "Rows that broke a rule, with every reason; NIK masked, no name. Warehouse only.",
    (_SNAPSHOT, Col("source_file", "VARCHAR", "path relative to the landing zone", False),
     Col("row_number", "BIGINT", "1-based data row (header excluded)", False),
     Col("province_code", "VARCHAR", "province office", False),
     Col("reasons", "VARCHAR[]", "codes of every rule the row breaks", False),
     Col("reason_text", "VARCHAR", "the same, in words", False),
     Col("nik_masked", "VARCHAR", "NIK with all but the first 6 characters masked"),
     *(Col(c, "VARCHAR", "as delivered, trimmed") for c in (
         "kpj", "segmen", "tingkat", "kode_wilayah", "npp", "nama_instansi",
         "tgl_kepesertaan", "bulan_iuran_terakhir"))),
    key=("snapshot_date", "source_file", "row_number"),
)

ENROLLMENT_ROWS = Table(
    "enrollment_rows", "Valid delivered rows, pseudonymised (keyed HMAC of the NIK, no name).",
    (_SNAPSHOT, Col("province_code", "VARCHAR", "province office", False),
     Col("source_file", "VARCHAR", "path relative to the landing zone", False),
     Col("row_number", "BIGINT", "1-based data row", False),
     Col("nik_hmac", "VARCHAR", "HMAC-SHA256 of the NIK under CAKUPAN_HMAC_KEY, hex", False),
     Col("kpj", "VARCHAR", "membership number"),
     Col("segmen", "VARCHAR", "PU or BPU", False),
     Col("tier", "VARCHAR", "tier code", False),
     Col("region_code", "VARCHAR", "dotted code as delivered (NULL: KL without code)"),
     Col("region_province", "VARCHAR", "province containing the row", False),
     Col("region_regency", "VARCHAR", "regency containing the row (NULL at province level)"),
     Col("npp", "VARCHAR", "employer registration number"),
     Col("nama_instansi", "VARCHAR", "employer name"),
     Col("tgl_kepesertaan", "DATE", "registration date", False),
     Col("paid_month", "INTEGER", "12*year+month of the last paid month (NULL: never)")),
)

ENROLLMENT = Table(
    "enrollment",
    "One row per snapshot, tier and person: the deciding row after the contract's dedupe.",
    (_SNAPSHOT, Col("tier", "VARCHAR", "tier code", False, TIER),
     Col("nik_hmac", "VARCHAR", "keyed HMAC of the NIK", False),
     Col("active", "BOOLEAN", "paid within the grace months", False),
     Col("paid_month", "INTEGER", "12*year+month of the last paid month"),
     Col("segmen", "VARCHAR", "PU or BPU", False),
     Col("region_province", "VARCHAR", "province of the deciding row", False),
     Col("region_regency", "VARCHAR", "regency of the deciding row"),
     Col("source_file", "VARCHAR", "file of the deciding row", False),
     Col("row_number", "BIGINT", "row of the deciding row", False)),
    key=("snapshot_date", "tier", "nik_hmac"),
)

TABLES = {t.name: t for t in (
    COVERAGE_BY_TIER, COVERAGE_NATIONAL, COVERAGE_BY_REGION, LOAD_LOG, QUARANTINE,
    ENROLLMENT_ROWS, ENROLLMENT,
)}
SERVING_TABLES = [t for t in TABLES.values() if t.serving]


def markdown() -> str:
    """The table reference for the README."""
    out = []
    for t in TABLES.values():
        where = "warehouse + serving" if t.serving else "warehouse"
        out.append(f"### `{t.name}` ({where})\n\n{t.description} Key: "
                   f"`{', '.join(t.key) or '-'}`.\n\n| column | type | description |\n|---|---|---|")
        out += [f"| `{c.name}` | {c.sql_type} | {c.description} |" for c in t.columns]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
