"""Every table cakupan writes, declared once.

Each :class:`Table` gives its columns (DuckDB type, nullability, description, pandera checks),
its key, where it is stored (the warehouse DuckDB file, or the lake of person-level Parquet
files) and whether it is published to the serving file. From it derive: the DDL of the
warehouse and the serving file (with ``COMMENT ON`` every table and column), the Parquet schema
of the lake files, the pandera schema behind each generated asset check, Dagster's column schema
metadata and the table reference in the README (``python -m schemas.tables``).

Beyond the per-row pandera rules a table may declare rules that need SQL or other data, each
turned into its own generated asset check by :mod:`assets.checks`: ``identities`` (an equation
every row satisfies, e.g. the flow identity), ``references`` (codes must exist in a reference
table, e.g. the region vintage of the row), ``deliveries`` (a row for every delivery of the
landing zone) and ``freshness`` (the newest date is recent enough; a warning only).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandera.pandas as pa

SCHEMA_VERSION = "3"   # the store layout (3: the pseudonym a UUID); an older one is rebuilt, never migrated


@dataclass(frozen=True)
class Col:
    name: str
    sql_type: str
    description: str
    nullable: bool = True
    checks: tuple[pa.Check, ...] = ()
    serving_only: bool = False


@dataclass(frozen=True)
class Identity:
    """Blocking: ``left = right`` on every row where both sides are not NULL (SQL expressions
    over the table's columns)."""
    name: str
    left: str
    right: str
    description: str


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
    """Every file of every delivery committed to the lake has a row. Blocking."""
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


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Col, ...]
    key: tuple[str, ...] = ()
    storage: str = "warehouse"          # or "lake": person-level Parquet files
    serving: bool = False
    checks: tuple[pa.Check, ...] = field(default_factory=tuple)
    identities: tuple[Identity, ...] = ()
    references: tuple[Reference, ...] = ()
    deliveries: Deliveries | None = None
    freshness: Freshness | None = None
    partition_column: str | None = "snapshot_date"   # None: the table is rebuilt whole

    def cols(self, serving: bool = False) -> list[Col]:
        return [c for c in self.columns if serving or not c.serving_only]

    def ddl(self, serving: bool = False) -> str:
        cols = ", ".join(f"{quote(c.name)} {c.sql_type}" for c in self.cols(serving))
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({cols})"

    def comments(self, serving: bool = False) -> list[str]:
        """``COMMENT ON`` the table and each column (DuckDB takes no parameter there; the texts
        are these declarations' own, quoted by :func:`literal`)."""
        out = [f"COMMENT ON TABLE {self.name} IS {literal(self.description)}"]
        out += [f"COMMENT ON COLUMN {self.name}.{quote(c.name)} IS {literal(c.description)}"
                for c in self.cols(serving)]
        return out

    def column_names(self, serving: bool = False) -> list[str]:
        return [c.name for c in self.cols(serving)]

    def select_list(self, serving: bool = False) -> str:
        return ", ".join(quote(c) for c in self.column_names(serving))

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
TIERS = ["KL", "PROV", "KABKOTA", "KEC", "DESA", "RTRW"]
TIER = (pa.Check.isin(TIERS),)
LEVELS = (pa.Check.isin(["province", "regency"]),)


def _counts(what: str = "people") -> tuple[Col, ...]:
    return (
        Col("active", "BIGINT", f"{what} active (paid within the grace months)", False,
            NON_NEGATIVE),
        Col("inactive", "BIGINT", f"{what} registered but not active", False, NON_NEGATIVE),
        Col("potential", "BIGINT", "potential workers at exactly this tier and region", True,
            NON_NEGATIVE),
        Col("penetration_pct", "DOUBLE",
            "active / potential x 100, unrounded; NULL where no potential exists", True, PCT),
    )


_SNAPSHOT = Col("snapshot_date", "DATE", "date of the enrollment extract", False)
_TIER = Col("tier", "VARCHAR", "tier code (KL, PROV, KABKOTA, KEC, DESA, RTRW)", False, TIER)
_TIER_LABEL = Col("tier_label", "VARCHAR", "tier label (Kementerian/Lembaga, ...)", False)
_VINTAGE = Col("vintage", "VARCHAR", "Kemendagri reference vintage in force", False)
_POTENTIAL_SET = Col("potential_set", "DATE", "date of the potential set in force (NULL: none)")
_LEVEL = Col("region_level", "VARCHAR", "province or regency", False, LEVELS)
_REGION = Col("region_code", "VARCHAR", "dotted Kemendagri code", False)
_REGION_NAME = Col("region_name", "VARCHAR", "name in the vintage in force")
# A region code must exist, at its level, in the Kemendagri vintage the row was counted with.
REGION_IN_VINTAGE = Reference(
    "ref_region", (("vintage", "vintage"), ("region_code", "kode"), ("region_level", "level")),
    name="region_codes_in_vintage",
    description="every region code exists, at its level, in the row's reference vintage")


def _trend(national: bool) -> tuple[Col, ...]:
    who = "people (national status: active in any tier)" if national else "people"
    return (
        Col("previous_snapshot", "DATE", "previous snapshot of the history (NULL: the first)"),
        Col("active", "BIGINT", f"{who} active at this snapshot", False, NON_NEGATIVE),
        Col("active_prev", "BIGINT", "active at the previous snapshot", True, NON_NEGATIVE),
        Col("new", "BIGINT", "absent at the previous snapshot, active now", True, NON_NEGATIVE),
        Col("reactivated", "BIGINT", "inactive at the previous snapshot, active now", True,
            NON_NEGATIVE),
        Col("lapsed", "BIGINT", "active at the previous snapshot, inactive now", True,
            NON_NEGATIVE),
        Col("left", "BIGINT", "active at the previous snapshot, absent now", True, NON_NEGATIVE),
        Col("active_change", "BIGINT", "active - active_prev"),
        Col("penetration_pct", "DOUBLE", "penetration at this snapshot (its own potential)"),
        Col("penetration_change_pp", "DOUBLE",
            "penetration now minus at the previous snapshot, percentage points"),
        Col("comparable", "BOOLEAN", "the previous snapshot had exactly the same province offices "
            "with a loaded delivery (false: a late or missing office distorts the change)"),
        Col("year_ago_snapshot", "DATE", "latest snapshot in the calendar month 12 months before"),
        Col("active_change_yoy", "BIGINT", "active - active at the year-ago snapshot"),
        Col("penetration_change_yoy_pp", "DOUBLE",
            "penetration now minus at the year-ago snapshot, percentage points"),
        Col("comparable_yoy", "BOOLEAN", "the year-ago snapshot had the same province offices"),
    )


FLOWS_BALANCE = Identity(
    "flows_balance", "active - active_prev", 'new + reactivated - lapsed - "left"',
    "active - active_prev = new + reactivated - lapsed - left")

COVERAGE_BY_TIER = Table(
    "coverage_by_tier", "Coverage per administrative tier and snapshot.",
    (_SNAPSHOT, _TIER, _TIER_LABEL, *_counts(), _VINTAGE, _POTENTIAL_SET),
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
     Col("offices_delivered", "BIGINT", "province offices with a loaded delivery", False,
         NON_NEGATIVE),
     _VINTAGE, _POTENTIAL_SET),
    key=("snapshot_date",), serving=True, freshness=Freshness(),
    checks=(pa.Check(lambda df: df["active"] <= df["active_tier_sum"], name="active_le_tier_sum",
                     error="national active exceeds the sum of the tiers"),),
)

COVERAGE_BY_REGION = Table(
    "coverage_by_region",
    "Coverage per tier and region (province and regency/city) and snapshot.",
    (_SNAPSHOT, _TIER, _TIER_LABEL, _LEVEL, _REGION, _REGION_NAME,
     Col("parent_code", "VARCHAR", "province of a regency; NULL for a province"),
     *_counts(),
     Col("uncovered", "BIGINT", "potential - active, at least 0 (NULL without potential)", True,
         NON_NEGATIVE),
     Col("uncovered_rank", "BIGINT", "rank by uncovered within snapshot, tier and level, largest "
         "first, ties by region_code (NULL without potential)", True, (pa.Check.ge(1),)),
     _VINTAGE, _POTENTIAL_SET,
     Col("suppressed", "BOOLEAN", "serving only: counts hidden because 0 < active < k "
         "(CAKUPAN_SUPPRESS_K)", serving_only=True)),
    key=("snapshot_date", "tier", "region_level", "region_code"), serving=True,
    references=(REGION_IN_VINTAGE,),
)

COVERAGE_TREND_TIER = Table(
    "coverage_trend_tier",
    "Flows and changes per tier between a snapshot and the previous and year-ago snapshots.",
    (_SNAPSHOT, _TIER, _TIER_LABEL, *_trend(False)),
    key=("snapshot_date", "tier"), serving=True, identities=(FLOWS_BALANCE,),
)

COVERAGE_TREND_NATIONAL = Table(
    "coverage_trend_national",
    "National flows and changes (each person once: active in any tier) per snapshot.",
    (_SNAPSHOT, *_trend(True)),
    key=("snapshot_date",), serving=True, identities=(FLOWS_BALANCE,),
)

COVERAGE_TREND_REGION = Table(
    "coverage_trend_region",
    "People gained and lost per tier and region since the previous snapshot.",
    (_SNAPSHOT, _TIER, _LEVEL, _REGION, _REGION_NAME,
     Col("previous_snapshot", "DATE", "previous snapshot of the history (NULL: the first)"),
     Col("active", "BIGINT", "people active in the region at this snapshot", False,
         NON_NEGATIVE),
     Col("active_prev", "BIGINT", "people active in the region at the previous snapshot", True,
         NON_NEGATIVE),
     Col("gained", "BIGINT", "active here now, not active here before (absent, inactive or "
         "active elsewhere)", True, NON_NEGATIVE),
     Col("lost", "BIGINT", "active here before, not active here now", True, NON_NEGATIVE),
     Col("active_change", "BIGINT", "active - active_prev"),
     Col("penetration_change_pp", "DOUBLE", "penetration now minus before, percentage points"),
     Col("comparable", "BOOLEAN", "the snapshot's comparable flag (same offices as before)"),
     Col("vintage", "VARCHAR", "Kemendagri vintage of the region code (this snapshot's; the "
         "previous one's for a region only there)", False)),
    key=("snapshot_date", "tier", "region_level", "region_code"), serving=True,
    identities=(Identity("gains_balance", "active_change", "gained - lost",
                         "active_change = gained - lost"),),
    references=(REGION_IN_VINTAGE,),
)

TARGET_PROGRESS = Table(
    "target_progress",
    "Progress towards each accepted target, per snapshot: people still needed, uncovered "
    "potential, the 12-snapshot trend and the projected date.",
    (_SNAPSHOT,
     Col("tier", "VARCHAR", "tier code, or NASIONAL for the national distinct count", False,
         (pa.Check.isin([*TIERS, "NASIONAL"]),)),
     Col("region_level", "VARCHAR", "national, province or regency", False,
         (pa.Check.isin(["national", "province", "regency"]),)),
     Col("region_code", "VARCHAR", "dotted Kemendagri code (NULL at national level)"),
     _REGION_NAME,
     Col("active", "BIGINT", "people active", True, NON_NEGATIVE),
     Col("potential", "BIGINT", "potential in force", True, NON_NEGATIVE),
     Col("penetration_pct", "DOUBLE", "active / potential x 100"),
     Col("target_pct", "DECIMAL(38,12)", "target penetration, exactly as set", False),
     Col("target_date", "DATE", "date by which the target is to be met", False),
     Col("people_to_target", "BIGINT", "max(0, ceil(target_pct x potential / 100) - active), "
         "exact", True, NON_NEGATIVE),
     Col("uncovered", "BIGINT", "max(0, potential - active)", True, NON_NEGATIVE),
     Col("trend_pp_per_month", "DOUBLE", "least-squares slope of penetration over the last 12 "
         "snapshots, percentage points per month (NULL: fewer than 3 points)"),
     Col("projected_date", "DATE", "when the target is met at this pace (NULL: never)"),
     Col("on_track", "BOOLEAN", "met, or projected by the target date"),
     Col("sumber", "VARCHAR", "source of the target")),
    key=("snapshot_date", "tier", "region_level", "region_code"), serving=True,
    partition_column=None,
)

RECONCILIATION = Table(
    "reconciliation",
    "Each published figure against the figure computed from the data (latest snapshot on or "
    "before the publication date).",
    (Col("published_date", "DATE", "date of the release (its folder)", False),
     Col("source_file", "VARCHAR", "path relative to the landing zone", False),
     Col("row_number", "BIGINT", "1-based data row of the release file", False),
     Col("tier", "VARCHAR", "tier code or NASIONAL (NULL: unreadable)"),
     Col("region_code", "VARCHAR", "dotted code (NULL: national figure)"),
     Col("metric", "VARCHAR", "active, inactive, potential or penetration_pct"),
     Col("published_value", "DECIMAL(38,6)", "the figure as published"),
     Col("published_decimals", "INTEGER", "decimals written, for percentages"),
     Col("snapshot_date", "DATE", "snapshot compared with"),
     Col("computed_value", "DOUBLE", "the figure computed from the data"),
     Col("difference", "DOUBLE", "published - computed"),
     Col("verdict", "VARCHAR", "match, truncated, differs, no_data or unreadable", False,
         (pa.Check.isin(["match", "truncated", "differs", "no_data", "unreadable"]),)),
     Col("message", "VARCHAR", "why, in words")),
    key=("published_date", "source_file", "row_number"), serving=True, partition_column=None,
)

PUBLISHED_CONSISTENCY = Table(
    "published_consistency",
    "A release checked against itself: tier actives against the national figure, "
    "percentages against counts.",
    (Col("published_date", "DATE", "date of the release", False),
     Col("check", "VARCHAR", "tier_sum_vs_national or pct_vs_counts", False,
         (pa.Check.isin(["tier_sum_vs_national", "pct_vs_counts"]),)),
     Col("tier", "VARCHAR", "tier code or NASIONAL (NULL for tier_sum_vs_national)"),
     Col("published_value", "DECIMAL(38,6)", "the figure as published"),
     Col("recomputed_value", "DOUBLE", "the same figure recomputed from the release's other "
         "figures"),
     Col("difference", "DOUBLE", "published - recomputed"),
     Col("verdict", "VARCHAR", "consistent, inconsistent, incomplete, match, truncated or "
         "differs", False,
         (pa.Check.isin(["consistent", "inconsistent", "incomplete", "match", "truncated",
                         "differs"]),)),
     Col("message", "VARCHAR", "in words")),
    key=("published_date", "check", "tier"), serving=True, partition_column=None,
)

LOAD_LOG = Table(
    "load_log", "One row per delivered enrollment file and snapshot.",
    (_SNAPSHOT,
     Col("source_file", "VARCHAR", "path relative to the landing zone", False),
     Col("province_code", "VARCHAR", "province office (from the file name)"),
     Col("sha256", "VARCHAR", "sha256 of the file's bytes (NULL: never read)"),
     Col("rows_read", "BIGINT", "data rows (NULL when the file could not be read)", True,
         NON_NEGATIVE),
     Col("rows_loaded", "BIGINT", "valid rows loaded (duplicates included)", False,
         NON_NEGATIVE),
     Col("rows_rejected", "BIGINT", "rows sent to quarantine", False, NON_NEGATIVE),
     Col("status", "VARCHAR", "loaded, rejected or superseded", False,
         (pa.Check.isin(["loaded", "rejected", "superseded"]),)),
     Col("message", "VARCHAR", "why, for every rejected or superseded file"),
     Col("loaded_at", "TIMESTAMP", "when the file was processed", False),
     Col("file_present", "BOOLEAN", "the file is still in the landing zone (false: deleted "
         "after it was processed; a loaded file's rows stay in force)", False)),
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
    "enrollment_rows",
    "Every valid delivered row, pseudonymised (keyed HMAC of the NIK, no name): the lake's "
    "deliveries/<date>/<PP>/rows-<version>.parquet, one file per delivery in force.",
    (_SNAPSHOT, Col("province_code", "VARCHAR", "province office", False),
     Col("source_file", "VARCHAR", "path relative to the landing zone", False),
     Col("row_number", "BIGINT", "1-based data row", False),
     Col("nik_hmac", "UUID", "the person: HMAC-SHA256 of the NIK under CAKUPAN_HMAC_KEY, its "
         "first 128 bits", False),
     Col("segmen", "VARCHAR", "PU or BPU", False),
     _TIER,
     Col("region_code", "VARCHAR", "dotted code as delivered (NULL: KL without code)"),
     Col("region_province", "VARCHAR", "province containing the row", False),
     Col("region_regency", "VARCHAR", "regency containing the row (NULL at province level)"),
     Col("tgl_kepesertaan", "DATE", "registration date", False),
     Col("paid_month", "INTEGER", "12*year+month of the last paid month (NULL: never)")),
    storage="lake",
)

ENROLLMENT = Table(
    "enrollment",
    "One row per snapshot, tier and person: the deciding row after the contract's dedupe "
    "(the lake's people/<date>.parquet).",
    (_SNAPSHOT, _TIER,
     Col("person", "UUID", "the person: the first 128 bits of the keyed HMAC of the NIK",
         False),
     Col("active", "BOOLEAN", "paid within the grace months", False),
     Col("paid_month", "INTEGER", "12*year+month of the last paid month"),
     Col("segmen", "VARCHAR", "PU or BPU", False),
     Col("region_province", "VARCHAR", "province of the deciding row", False),
     Col("region_regency", "VARCHAR", "regency of the deciding row"),
     Col("source_file", "VARCHAR", "file of the deciding row", False),
     Col("row_number", "BIGINT", "row of the deciding row", False)),
    key=("snapshot_date", "tier", "person"), storage="lake",
)

TABLES = {t.name: t for t in (
    COVERAGE_BY_TIER, COVERAGE_NATIONAL, COVERAGE_BY_REGION, COVERAGE_TREND_TIER,
    COVERAGE_TREND_NATIONAL, COVERAGE_TREND_REGION, TARGET_PROGRESS, RECONCILIATION,
    PUBLISHED_CONSISTENCY, LOAD_LOG, QUARANTINE, ENROLLMENT_ROWS, ENROLLMENT,
)}
WAREHOUSE_TABLES = [t for t in TABLES.values() if t.storage == "warehouse"]
SERVING_TABLES = [t for t in TABLES.values() if t.serving]

# Serving views: what a BI user charts first.
SERVING_VIEWS = {
    "penetration_history": (
        "One line per snapshot and tier (NASIONAL: each person once): the penetration time "
        "series.",
        "SELECT snapshot_date, tier, active, potential, penetration_pct FROM coverage_by_tier "
        "UNION ALL SELECT snapshot_date, 'NASIONAL', active, potential, penetration_pct "
        "FROM coverage_national",
        {"snapshot_date": "date of the enrollment extract",
         "tier": "tier code, or NASIONAL for the national distinct count",
         "active": "people active", "potential": "potential in force",
         "penetration_pct": "active / potential x 100, unrounded"}),
}

# Tables that only the pipeline's bookkeeping uses (not part of the contract's outputs).
INTERNAL_DDL = [
    "CREATE TABLE IF NOT EXISTS cakupan_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    # the data version of each warehouse table partition, written with its rows
    "CREATE TABLE IF NOT EXISTS cakupan_versions (asset VARCHAR, partition VARCHAR, "
    "version VARCHAR, PRIMARY KEY (asset, partition))",
    "CREATE TABLE IF NOT EXISTS ref_vintage (vintage VARCHAR, in_force_from DATE, "
    "decree VARCHAR, file_sha256 VARCHAR)",
    "CREATE TABLE IF NOT EXISTS ref_region (vintage VARCHAR, kode VARCHAR, nama VARCHAR, "
    "level VARCHAR, parent_code VARCHAR, province_code VARCHAR, regency_code VARCHAR)",
    "CREATE TABLE IF NOT EXISTS potential (valid_from DATE, tier VARCHAR, region_code VARCHAR, "
    "region_level VARCHAR, potensi BIGINT, sumber VARCHAR, source_file VARCHAR)",
    "CREATE TABLE IF NOT EXISTS potential_set (valid_from DATE, status VARCHAR, "
    "rows_read BIGINT, message VARCHAR, loaded_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS targets (tier VARCHAR, region_level VARCHAR, "
    "region_code VARCHAR, target_pct DECIMAL(38,12), target_e12 HUGEINT, target_date DATE, "
    "sumber VARCHAR, source_file VARCHAR)",
    "CREATE TABLE IF NOT EXISTS target_set (status VARCHAR, files VARCHAR, rows_read BIGINT, "
    "message VARCHAR, loaded_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS published (published_date DATE, source_file VARCHAR, "
    "row_number BIGINT, tier VARCHAR, region_code VARCHAR, region_level VARCHAR, "
    "metric VARCHAR, value_text VARCHAR, decimals INTEGER, sumber VARCHAR, problem VARCHAR)",
]


def markdown() -> str:
    """The table reference for the README."""
    out = []
    for t in TABLES.values():
        where = ("lake (Parquet)" if t.storage == "lake"
                 else "warehouse + serving" if t.serving else "warehouse")
        out.append(f"### `{t.name}` ({where})\n\n{t.description} Key: "
                   f"`{', '.join(t.key) or '-'}`.\n\n| column | type | description |\n|---|---|---|")
        out += [f"| `{c.name}` | {c.sql_type} | {c.description} |" for c in t.columns]
        out.append("")
    for name, (description, _, columns) in SERVING_VIEWS.items():
        out.append(f"### `{name}` (serving view)\n\n{description}\n\n| column | description |"
                   "\n|---|---|")
        out += [f"| `{c}` | {d} |" for c, d in columns.items()]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
