"""Stage: the offline HTML report people read, written from the serving file.

The report follows the serving file by declarative automation (``AutomationCondition.eager()``):
under the daemon it is requested when the serving file was published; ``cakupan run`` requests
it in the same run as the publish. It reads nothing but the serving file (aggregates only), and
is replaced atomically beside it. Its data version is its code version and the serving file's.
"""

from pathlib import Path

import dagster as dg

from assets import versions
from assets.render import write_html
from assets.render.html import HERE as RENDER_DIR
from assets.resources import PermanentError, Settings

CODE_VERSION = versions.code_version(   # the render library, its page, styles and script
    "report", *(p.read_text(encoding="utf-8") for p in sorted(RENDER_DIR.iterdir())
                if p.suffix in (".py", ".html", ".css", ".js")))
SERVING = dg.AssetKey("serving_file")


def version(serving_version: str | None) -> str:
    """From the serving file's data version (which already names the store)."""
    return versions.of_inputs(CODE_VERSION, "", serving=serving_version)


@dg.asset(
    kinds={"html"}, group_name="serving", code_version=CODE_VERSION, deps=[SERVING],
    automation_condition=dg.AutomationCondition.eager(),
    description="The offline HTML report (charts, a province map, targets, reconciliation, "
                "completeness) written beside the serving file from its aggregates alone.",
)
def report_html(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    serving: Path = settings.serving_path
    if not serving.exists():
        raise PermanentError(f"no serving file at {serving}: publish it first (serving_file)")
    record = context.instance.get_latest_materialization_event(SERVING)
    upstream = (record.asset_materialization.tags or {}).get(versions.VERSION_TAG) \
        if record and record.asset_materialization else None
    out = settings.report_path
    built = write_html(serving, out)
    context.log.info(f"report {out.resolve()}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version(upstream)),
        metadata={"path": dg.MetadataValue.path(str(out.resolve())),
                  "report": dg.MetadataValue.url(out.resolve().as_uri()),
                  "bytes": built["bytes"], "charts": built["charts"], "maps": built["maps"],
                  "snapshot": str(built["snapshot"] or ""),
                  "snapshots": built["snapshots"], "seconds": round(built["seconds"], 2)})
