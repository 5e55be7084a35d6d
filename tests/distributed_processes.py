"""Starting and stopping the processes of the distributed-training tests (no framework imported here).

`run_processes` starts commands in their own process groups, waits for all of them with one deadline
(a guard against a hang, not a measurement), and always stops what is still running, the whole group,
when it returns or raises: a failed or hung rank cannot outlive its test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUARD_S = 240  # far above what the tests take; only a hung process reaches it


@dataclass
class Finished:
    returncodes: list[int | None]  # None: stopped at the guard
    logs: list[str]

    @property
    def ok(self) -> bool:
        return all(code == 0 for code in self.returncodes)

    def describe(self) -> str:
        return "\n".join(
            f"--- process {i}: exit {code}\n{log[-4000:]}"
            for i, (code, log) in enumerate(zip(self.returncodes, self.logs, strict=True))
        )


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_env(**extra: str) -> dict[str, str]:
    """This environment, with the repository importable and one thread per process (2 cores, 2 ranks)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_processes(
    commands: list[list[str]], envs: list[dict[str, str]], folder: Path, guard_s: int = GUARD_S
) -> Finished:
    """Run `commands` (each with its environment) at once, and stop every one still running by `guard_s`."""
    logs = [folder / f"process{i}.log" for i in range(len(commands))]
    procs: list[subprocess.Popen[bytes]] = []
    handles = [open(path, "wb") for path in logs]  # noqa: SIM115 (closed below)
    try:
        for command, env, handle in zip(commands, envs, handles, strict=True):
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped with everything it started
                )
            )
        deadline = time.monotonic() + guard_s
        codes: list[int | None] = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                codes.append(None)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for handle in handles:
            handle.close()
    return Finished(codes, [path.read_text(errors="replace") for path in logs])


def run_ranks(module: str, args: list[str], folder: Path, world: int = 2, **extra: str) -> Finished:
    """`python -m module ARGS` once per rank, with the environment torchrun gives its workers."""
    port = str(free_port())
    envs = [
        python_env(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            WORLD_SIZE=str(world),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            **extra,
        )
        for rank in range(world)
    ]
    return run_processes([[sys.executable, "-m", module, *args]] * world, envs, folder)
