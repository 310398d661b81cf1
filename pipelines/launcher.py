"""Run launchers of the local deployment, with run-worker health checks.

* :class:`LocalProcessRunLauncher` (embedded and production profiles): every run in its own
  ``dagster api execute_run`` process, like Dagster's Docker and Kubernetes launchers run it in
  its own container. It records the worker's pid, host and start time on the run, so the
  daemon's run monitoring can tell a dead worker (SIGKILL, OOM, power loss) from a live one:
  the run is failed cleanly, and the run-retry daemon re-executes it from failure.
* :class:`InProcessRunLauncher` (``cakupan run``, no daemon): the run executes in the calling
  process, synchronously, with the same tags, so a later ``cakupan run`` (or run monitoring) can
  fail a run whose process is gone.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
from dagster import DagsterRun, DagsterRunStatus
from dagster._core.launcher import (CheckRunHealthResult, LaunchRunContext, RunLauncher,
                                    WorkerStatus)
from dagster._serdes import ConfigurableClass

PID, HOST, STARTED = "cakupan/worker_pid", "cakupan/worker_host", "cakupan/worker_started"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def worker_tags(pid: int) -> dict[str, str]:
    return {PID: str(pid), HOST: socket.gethostname(),
            STARTED: f"{psutil.Process(pid).create_time():.3f}"}


def worker_alive(run: DagsterRun) -> bool | None:
    """True: its worker process lives; False: it is gone; None: not ours to judge."""
    pid, host, started = run.tags.get(PID), run.tags.get(HOST), run.tags.get(STARTED)
    if not pid or host != socket.gethostname():
        return None
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return f"{proc.create_time():.3f}" == started
    except psutil.NoSuchProcess:
        return False


class _Base(RunLauncher, ConfigurableClass):
    def __init__(self, inst_data=None):
        self._inst_data = inst_data
        super().__init__()

    @property
    def inst_data(self):
        return self._inst_data

    @classmethod
    def config_type(cls):
        return {}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data)

    @property
    def supports_check_run_worker_health(self):
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        alive = worker_alive(run)
        if alive is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no worker recorded on this host")
        if alive:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED,
                                    f"run worker process {run.tags.get(PID)} is gone")


class LocalProcessRunLauncher(_Base):
    def __init__(self, inst_data=None):
        super().__init__(inst_data)
        self._procs: dict[str, subprocess.Popen] = {}

    def launch_run(self, context: LaunchRunContext) -> None:
        from dagster._grpc.types import ExecuteRunArgs

        run = context.dagster_run
        args = ExecuteRunArgs(job_origin=run.job_code_origin, run_id=run.run_id,
                              instance_ref=self._instance.get_ref(), set_exit_code_on_failure=True)
        logs = Path(self._instance.root_directory) / "worker-logs"
        logs.mkdir(parents=True, exist_ok=True)
        # the code location's interpreter, by path: works without the virtualenv on PATH
        python = run.job_code_origin.executable_path or sys.executable
        command = [python, "-m", "dagster", *list(args.get_command_args())[-3:]]
        with open(logs / f"{run.run_id}.log", "ab") as out:
            proc = subprocess.Popen(command, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=dict(os.environ))
        self._procs[run.run_id] = proc
        self._instance.add_run_tags(run.run_id, worker_tags(proc.pid))
        self._reap()

    def _reap(self) -> None:
        for run_id, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[run_id]

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        self._reap()
        return super().check_run_worker_health(run)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or not worker_alive(run):
            return False
        self._instance.report_run_canceling(run)
        try:
            os.killpg(int(run.tags[PID]), 15)
        except ProcessLookupError:
            return False
        return True


class InProcessRunLauncher(_Base):
    def launch_run(self, context: LaunchRunContext) -> None:
        from dagster._core.execution.api import execute_run
        from dagster._utils.hosted_user_process import recon_job_from_origin

        run = context.dagster_run
        self._instance.add_run_tags(run.run_id, worker_tags(os.getpid()))
        run = self._instance.get_run_by_id(run.run_id)
        execute_run(recon_job_from_origin(run.job_code_origin), run, self._instance)

    def terminate(self, run_id: str) -> bool:
        return False


def fail_orphans(instance, log=print) -> list[str]:
    """Fail every run that is not finished but whose worker process on this host is gone (a
    ``cakupan run`` or run worker killed mid-run): nothing left by a dead run blocks the next."""
    from dagster import RunsFilter

    failed = []
    statuses = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.CANCELING,
                DagsterRunStatus.NOT_STARTED]
    for run in instance.get_runs(filters=RunsFilter(statuses=statuses)):
        if worker_alive(run) is False:
            instance.report_run_failed(run, f"its worker process {run.tags.get(PID)} is gone "
                                            "(killed?); failed by the next start")
            failed.append(run.run_id)
    if failed:
        log(f"  failed {len(failed)} run(s) left by a process that is gone")
    return failed

