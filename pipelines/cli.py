"""The `cakupan` command line: demo, run, report, dev, daemon.

Errors reach the user as one clear message (exit 1), never a traceback; set CAKUPAN_DEBUG=1
to see the traceback as well.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import warnings
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 2
DEMO_KEY_FILE = Path("data/demo-hmac.key")


def _settings(args):
    from pipelines.resources import settings_from_env

    overrides = {name: getattr(args, name, None) for name in ("landing", "serving", "warehouse")}
    return settings_from_env(**{k: v for k, v in overrides.items() if v})


def cmd_demo(args) -> int:
    from pipelines.demo import generate_landing

    out = Path(args.out)
    started = time.perf_counter()
    manifest = generate_landing(out, scale=args.scale, snapshots=args.snapshots, seed=args.seed,
                                progress=lambda msg: print(f"  {msg}", file=sys.stderr))
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


def cmd_run(args) -> int:
    from pipelines.report import tier_table
    from pipelines.resources import hmac_pads
    from pipelines.runner import Runner, StepFailed

    hmac_pads()  # refuse to start without the key
    settings, warehouse = _settings(args)
    if not settings.landing_path.is_dir():
        raise UserError(f"landing zone {settings.landing} does not exist "
                        "(generate one with `cakupan demo`, or pass --landing DIR)")
    print(f"cakupan run: landing {settings.landing}, warehouse {warehouse.database}, "
          f"serving {settings.serving}")
    started = time.perf_counter()
    runner = Runner(settings, warehouse)
    code, failure = EXIT_OK, None
    try:
        summary = runner.run()
    except StepFailed as exc:
        summary, code, failure = runner.summary, EXIT_FAILED, str(exc)
    total = time.perf_counter() - started
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps({
            "stages": summary.stages, "total_seconds": round(total, 3),
            "published": summary.published, "rejected": summary.rejected,
            "failure": failure, "exit_code": code if failure or not summary.rejected
            else EXIT_REJECTED}, indent=2))
    if failure:
        print(f"\nFAILED: {failure}\nThe serving file keeps its previous good state.",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"\ndone in {total:.1f} s; snapshots with new deliveries: "
          f"{', '.join(summary.snapshots_ingested) or 'none'}")
    print(_load_summary(warehouse, summary.snapshots_ingested))
    print()
    print(tier_table(Path(settings.serving)))
    if summary.rejected:
        print(f"\n{len(summary.rejected)} file(s) rejected whole:", file=sys.stderr)
        for src, msg in summary.rejected:
            print(f"  {src}: {msg}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


def _load_summary(warehouse, days: list[str]) -> str:
    if not days:
        return "nothing new was delivered."
    with warehouse.connect() as con:
        rows = con.execute(
            "SELECT CAST(snapshot_date AS VARCHAR), count(*) FILTER (status = 'loaded'), "
            "count(*) FILTER (status = 'rejected'), count(*) FILTER (status = 'superseded'), "
            "coalesce(sum(rows_read), 0), sum(rows_loaded), sum(rows_rejected) FROM load_log "
            "WHERE CAST(snapshot_date AS VARCHAR) IN (SELECT unnest(?)) GROUP BY 1 ORDER BY 1",
            [days]).fetchall()
    lines = [f"{'snapshot':<11} {'loaded':>6} {'rejected':>8} {'superseded':>10} "
             f"{'rows read':>11} {'rows loaded':>11} {'quarantined':>11}"]
    lines += [f"{d:<11} {a:>6} {b:>8} {c:>10} {r:>11,} {l:>11,} {q:>11,}"
              for d, a, b, c, r, l, q in rows]
    return "\n".join(lines)


def cmd_report(args) -> int:
    from pipelines.report import tier_table

    settings, _ = _settings(args)
    print(tier_table(Path(settings.serving), args.snapshot))
    return EXIT_OK


def cmd_dev(args) -> int:
    from pipelines.instance import dagster_home

    dagster_home()
    root = Path(__file__).resolve().parents[1]
    os.execvp("dagster", ["dagster", "dev", "-w", str(root / "workspace.yaml"),
                          "-p", str(args.port), "-h", args.host])


def cmd_daemon(args) -> int:
    from pipelines.instance import dagster_home

    dagster_home()  # CAKUPAN_PROFILE=production: deploy/dagster.yaml (PostgreSQL)
    root = Path(__file__).resolve().parents[1]
    os.execvp("dagster-daemon", ["dagster-daemon", "run", "-w", str(root / "workspace.yaml")])


class UserError(RuntimeError):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cakupan", description=(
        "Coverage of non-ASN government workers in BPJS Ketenagakerjaan, tier by tier and "
        "region by region."))
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write a demo landing zone")
    demo.add_argument("--out", default="data/landing")
    demo.add_argument("--scale", type=float, default=1.0,
                      help="1 reproduces the RDP Komisi IX (Nov 2021) tier figures")
    demo.add_argument("--snapshots", type=int, default=6, help="monthly snapshots")
    demo.add_argument("--seed", type=int, default=20211115)
    demo.set_defaults(func=cmd_demo)
    key = sub.add_parser("demo-key", help="print the demo's local HMAC key (creating it)")
    key.set_defaults(func=cmd_demo_key)
    run = sub.add_parser("run", help="materialize every pending partition and publish")
    run.add_argument("--landing")
    run.add_argument("--warehouse")
    run.add_argument("--serving")
    run.add_argument("--summary-json", help="write stage timings and outcome as JSON")
    run.set_defaults(func=cmd_run)
    report = sub.add_parser("report", help="print coverage by tier")
    report.add_argument("--snapshot", help="YYYY-MM-DD (default: the latest)")
    report.add_argument("--serving")
    report.set_defaults(func=cmd_report)
    dev = sub.add_parser("dev", help="open the Dagster UI (dagster dev -w workspace.yaml)")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--host", default="127.0.0.1")
    dev.set_defaults(func=cmd_dev)
    daemon = sub.add_parser("daemon", help="run the Dagster daemon (sensors, schedules, run "
                            "queue): dagster-daemon run -w workspace.yaml")
    daemon.set_defaults(func=cmd_daemon)
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
        from pipelines.report import ReportError
        from pipelines.resources import HmacKeyMissing

        known = (UserError, ReportError, HmacKeyMissing)
        prefix = "" if isinstance(exc, known) else f"{type(exc).__name__}: "
        print(f"cakupan: {prefix}{exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
