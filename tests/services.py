"""Real Dagster services for the operations tests: `dagster-webserver`, `dagster-daemon` and
`dagster dev` as subprocesses on a free loopback port, every wait bounded, always stopped.

Each process runs in its own session (process group), so stopping it also stops the code
server and run workers it spawned. Output goes to a log file whose tail is shown on failure.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "workspace.yaml"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executable(name: str) -> str:
    """A console script of this interpreter's environment (else the one on PATH)."""
    local = BIN / name
    return str(local) if local.exists() else (shutil.which(name) or name)


class Service:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._fh = open(self.log, "wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._fh,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- last lines of {self.name} ---\n" + "\n".join(text[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 15) -> None:
        """SIGTERM to the whole process group, SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # run workers and code servers left in the group after the leader exited
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._fh.close()


def wait_until(predicate, timeout: float, what: str, services=(), interval: float = 1.0):
    """Poll ``predicate`` until it returns a truthy value; fail with the services' logs."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        for svc in services:
            if not svc.alive():
                raise AssertionError(f"{svc.name} exited with {svc.proc.returncode} while "
                                     f"waiting for {what}\n{svc.tail()}")
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(interval)
    logs = "\n".join(s.tail() for s in services)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} "
                         f"(last error: {last_error!r})\n{logs}")


def server_info(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as resp:
        return json.loads(resp.read())


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        payload = json.loads(resp.read())
    if payload.get("errors"):
        raise RuntimeError(payload["errors"])
    return payload["data"]


RUNS_QUERY = """
query Runs { runsOrError { __typename ... on Runs { results { runId status jobName
  tags { key value } } } } }
"""


def runs(port: int) -> list[dict]:
    return graphql(port, RUNS_QUERY)["runsOrError"]["results"]


def location_loaded(port: int) -> bool:
    data = graphql(port, """query { workspaceOrError { ... on Workspace { locationEntries {
      name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
    entries = data["workspaceOrError"]["locationEntries"]
    for entry in entries:
        err = entry["locationOrLoadError"]
        if err and err["__typename"] == "PythonError":
            raise AssertionError(f"code location {entry['name']} failed to load: "
                                 f"{err['message']}")
    return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"]
                                 for e in entries)


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAKUPAN_", "DAGSTER_"))}
    # the virtualenv's bin is NOT on PATH (as for `make dev` from a fresh clone): services are
    # started by absolute path and must start their own workers the same way
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and Path(p).resolve() != BIN.resolve()]
    env.update({"DAGSTER_HOME": str(home), "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "PATH": os.pathsep.join(path)})
    env.update(extra)
    return env
