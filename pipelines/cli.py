"""The `cakupan` command line: demo, run, report, dev, daemon.

Errors reach the user as one clear message (exit 1), never a traceback; set CAKUPAN_DEBUG=1
to see the traceback as well.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import time
import warnings
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 2
DEMO_KEY_FILE = Path("data/demo-hmac.key")
_FLAGS = {"landing": "CAKUPAN_LANDING", "warehouse": "CAKUPAN_WAREHOUSE",
          "serving": "CAKUPAN_SERVING"}


class UserError(RuntimeError):
    pass


def _settings(args):
    """Flags become CAKUPAN_* variables first: the code location (loaded in this process, or by
    a daemon) reads its settings from the environment, so both always agree."""
    from pipelines.resources import settings_from_env

    for name, env in _FLAGS.items():
        value = getattr(args, name, None)
        if value:
            os.environ[env] = str(Path(value).absolute())
    return settings_from_env()


def cmd_demo(args) -> int:
    from pipelines.demo import generate_landing

    out = Path(args.out)
    started = time.perf_counter()
    try:
        manifest = generate_landing(out, scale=args.scale, snapshots=args.snapshots,
                                    seed=args.seed,
                                    progress=lambda msg: print(f"  {msg}", file=sys.stderr))
    except ValueError as exc:   # DemoRefused: a user's directory is never overwritten
        raise UserError(str(exc)) from None
    print(f"demo landing zone written to {out} in {time.perf_counter() - started:.1f} s "
          f"(scale {args.scale}, {len(manifest['snapshots'])} snapshots)")
    if not os.environ.get("CAKUPAN_HMAC_KEY"):
        demo_key()
    return EXIT_OK


def demo_key() -> str:
    """The demo's local HMAC key, created (mode 0600, git-ignored) on first use."""
    if not DEMO_KEY_FILE.exists():
        DEMO_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(DEMO_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        print(f"created a local HMAC key for the demo in {DEMO_KEY_FILE} (mode 0600, not in "
              "version control). For real extracts set CAKUPAN_HMAC_KEY from your secret store.",
              file=sys.stderr)
    return DEMO_KEY_FILE.read_text().strip()


def cmd_demo_key(args) -> int:
    print(demo_key())
    return EXIT_OK


def _present_rejections(con, landing) -> list[tuple[str, str]]:
    present = {f.relpath for f in landing.files()}
    rows = con.execute("SELECT source_file, message FROM load_log WHERE status = 'rejected' "
                       "ORDER BY snapshot_date, source_file").fetchall()
    out = [(src, msg) for src, msg in rows if src in present]
    sets = {str(day) for day in landing.potential}
    out += [(f"potential/{day}/", msg) for day, msg in con.execute(
        "SELECT CAST(valid_from AS VARCHAR), message FROM potential_set "
        "WHERE status = 'rejected' ORDER BY valid_from").fetchall() if day in sets]
    if landing.targets:
        out += [("targets/", msg) for (msg,) in con.execute(
            "SELECT message FROM target_set WHERE status = 'rejected'").fetchall()]
    return out


def cmd_run(args) -> int:
    from readers import keys
    from readers.landing import scan

    from pipelines.report import ReportError, load_summary, tier_table
    from pipelines.runner import Refresh, StepFailed

    settings, warehouse = _settings(args)
    try:
        keys.hmac_key()
    except keys.KeyProblem as exc:
        raise UserError(str(exc)) from None
    if not settings.landing_path.is_dir():
        raise UserError(f"landing zone {settings.landing} does not exist "
                        "(generate one with `cakupan demo`, or pass --landing DIR)")
    print(f"cakupan run: landing {settings.landing}, warehouse {warehouse.database}, "
          f"serving {settings.serving}")
    started = time.perf_counter()
    refresh = Refresh(settings, warehouse, echo=lambda m: print(m, file=sys.stderr, flush=True))
    code, failure = EXIT_OK, None
    try:
        summary = refresh.run()
    except StepFailed as exc:
        summary, code, failure = refresh.summary, EXIT_FAILED, str(exc)
    total = time.perf_counter() - started
    landing = scan(settings.landing_path)
    rejected, deleted = [], []
    if warehouse.path.exists():
        with warehouse.connect(read_only=True) as con:
            rejected = _present_rejections(con, landing)
            deleted = [r[0] for r in con.execute(
                "SELECT source_file FROM load_log WHERE NOT file_present AND status = 'loaded' "
                "ORDER BY 1").fetchall()]
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps({
            "stages": summary.stages, "total_seconds": round(total, 3), "runs": summary.runs,
            "invocation": summary.invocation, "published": summary.published,
            "rejected": rejected, "warnings": summary.warnings, "failure": failure,
            "exit_code": code if failure or not rejected else EXIT_REJECTED}, indent=2))
    for line in summary.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if deleted:
        print(f"warning: {len(deleted)} file(s) loaded earlier are no longer in the landing "
              f"zone; their rows stay in force: {', '.join(deleted[:5])}", file=sys.stderr)
    if summary.waiting:
        print(f"waiting: {len(summary.waiting)} file(s) still being written, left for the next "
              f"run: {', '.join(summary.waiting[:5])}", file=sys.stderr)
    if failure:
        print(f"\nFAILED: {failure}\nThe serving file keeps its previous good state.",
              file=sys.stderr)
        return EXIT_FAILED
    if not summary.runs:
        print(f"\nnothing new was delivered: everything is up to date (no run launched, "
              f"{total:.1f} s)")
    else:
        print(f"\ndone in {total:.1f} s in {len(summary.runs)} run(s) (tag cakupan/invocation="
              f"{summary.invocation}); snapshots recounted: "
              f"{', '.join(summary.snapshots) or 'none'}")
    if summary.snapshots and warehouse.path.exists():
        print(load_summary(warehouse, summary.snapshots))
    if settings.serving_path.exists():
        print()
        try:
            print(tier_table(settings.serving_path))
        except ReportError as exc:   # e.g. every delivery so far was rejected
            print(f"no tier table: {exc}")
    if settings.report_path.exists():
        print(f"\nreport: {settings.report_path}")
    if rejected:
        print(f"\n{len(rejected)} file(s) rejected whole:", file=sys.stderr)
        for src, msg in rejected:
            print(f"  {src}: {msg}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


def cmd_report(args) -> int:
    from pipelines.report import ReportError, tier_table, trend_table

    settings, _ = _settings(args)
    if args.html or args.xlsx:
        from assets.render import write_html, write_xlsx

        if not settings.serving_path.exists():
            raise ReportError(f"no serving file at {settings.serving}: run `cakupan run` first")
        if args.html:
            built = write_html(settings.serving_path, Path(args.html), tier=args.tier)
            print(f"report written to {args.html} ({built['bytes'] / 1e6:.1f} MB, "
                  f"{built['snapshots']} snapshot(s), opens offline)")
        if args.xlsx:
            write_xlsx(settings.serving_path, Path(args.xlsx))
            print(f"workbook written to {args.xlsx} (one sheet per serving table)")
        return EXIT_OK
    if args.trend:
        print(trend_table(settings.serving_path, args.trend))
    else:
        print(tier_table(settings.serving_path, args.snapshot))
    return EXIT_OK


def _bin(name: str) -> str:
    """A console script of this interpreter's environment: works without the venv on PATH."""
    local = Path(sys.executable).parent / name
    if not local.exists():
        raise UserError(f"{name} is not installed next to {sys.executable}")
    return str(local)


def _service_env(args) -> None:
    from readers import keys

    from pipelines.instance import ROOT, dagster_home

    settings, warehouse = _settings(args)
    if (os.environ.get("CAKUPAN_PROFILE") or "embedded") == "production":
        try:
            keys.hmac_key()
        except keys.KeyProblem as exc:
            raise UserError(f"the production profile needs the key: {exc}") from None
    dagster_home(warehouse.path)
    os.chdir(ROOT)


def cmd_dev(args) -> int:
    from pipelines.instance import ROOT

    _service_env(args)
    os.execv(_bin("dagster"), [_bin("dagster"), "dev", "-w", str(ROOT / "workspace.yaml"),
                               "-p", str(args.port), "-h", args.host])


def cmd_daemon(args) -> int:
    from pipelines.instance import ROOT

    _service_env(args)
    os.execv(_bin("dagster-daemon"), [_bin("dagster-daemon"), "run", "-w",
                                      str(ROOT / "workspace.yaml")])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cakupan", description=(
        "Coverage of non-ASN government workers in BPJS Ketenagakerjaan, tier by tier and "
        "region by region."))
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write a demo landing zone")
    demo.add_argument("--out", default="data/landing")
    demo.add_argument("--scale", type=float, default=1.0,
                      help="1 reproduces the RDP Komisi IX (Nov 2021) tier figures")
    demo.add_argument("--snapshots", type=int, default=13, help="monthly snapshots")
    demo.add_argument("--seed", type=int, default=20211115)
    demo.set_defaults(func=cmd_demo)
    key = sub.add_parser("demo-key", help="print the demo's local HMAC key (creating it)")
    key.set_defaults(func=cmd_demo_key)
    run = sub.add_parser("run", help="refresh everything whose inputs changed, and publish")
    for name in _FLAGS:
        run.add_argument(f"--{name}")
    run.add_argument("--summary-json", help="write stage timings and outcome as JSON")
    run.set_defaults(func=cmd_run)
    report = sub.add_parser("report", help="print coverage by tier, or write the HTML report "
                            "or the XLSX workbook")
    report.add_argument("--html", metavar="FILE", help="write the offline HTML report")
    report.add_argument("--xlsx", metavar="FILE", help="write every serving table as a sheet")
    report.add_argument("--tier", default="RTRW", help="tier of the HTML map (default RTRW)")
    report.add_argument("--snapshot", help="YYYY-MM-DD (default: the latest)")
    report.add_argument("--trend", type=int, nargs="?", const=6, metavar="N",
                        help="flows and changes per tier for the latest N snapshots (6)")
    report.add_argument("--serving")
    report.set_defaults(func=cmd_report)
    for name, helptext, func in (
            ("dev", "open the Dagster UI (dagster dev -w workspace.yaml)", cmd_dev),
            ("daemon", "run the Dagster daemon (sensors, run queue, run monitoring)", cmd_daemon)):
        cmd = sub.add_parser(name, help=helptext)
        for flag in _FLAGS:
            cmd.add_argument(f"--{flag}")
        if name == "dev":
            cmd.add_argument("--port", type=int, default=3000)
            cmd.add_argument("--host", default="127.0.0.1")
        cmd.set_defaults(func=func)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not os.environ.get("CAKUPAN_DEBUG"):
        warnings.filterwarnings("ignore")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # one clear message, never a traceback
        if os.environ.get("CAKUPAN_DEBUG"):
            raise
        from assets.resources import PermanentError
        from pipelines.instance import InstanceMismatch
        from pipelines.report import ReportError

        known = (UserError, ReportError, InstanceMismatch)
        if isinstance(exc, PermanentError):
            message = exc.description
        elif isinstance(exc, known):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        print(f"cakupan: {message}", file=sys.stderr)
        return EXIT_FAILED


def entry() -> None:
    """The ``cakupan`` command. After ``run`` (whose every file is written, closed and renamed
    into place by then) the process leaves without the interpreter's teardown of dagster,
    pandas and pyarrow: 0.5 s of every night, a twentieth of an incremental one."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] == ["run"]:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
