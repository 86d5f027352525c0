"""Real Celery worker processes on the test database, media folder and broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
from django.conf import settings
from django.db import connection

from diagnosis.tests.celery_worker import database_url_of_the_test_database


class Worker:
    def __init__(self, process: subprocess.Popen, log_path: Path, node: str) -> None:
        self.process, self.log_path, self.node = process, log_path, node

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"worker {self.node} exited with {self.process.returncode}:\n{self.log()[-5000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a machine losing power would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def start_worker(*, queues: str, log_path: Path, env: dict[str, str], node: str | None = None,
                 pool: str = "solo", extra: tuple[str, ...] = ()) -> Worker:
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite" and (name in ("", ":memory:") or "mode=memory" in name):
        pytest.fail("the SQLite test database must be a file for a second process to share it (settings_test)")
    node = node or f"{queues.split(',')[0]}-{uuid.uuid4().hex[:8]}@%h"
    command = [
        sys.executable, "-m", "celery", "-A", "kidneyweb", "worker", "-Q", queues, "-P", pool, "-c", "1",
        "--loglevel=info", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", node, *extra,
    ]
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kidneyweb.settings_test",
        "DATABASE_URL": database_url_of_the_test_database(),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    with log_path.open("ab") as log:
        # A session of its own, so kill() reaches the pool processes too.
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=full_env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return Worker(process, log_path, node)


@contextmanager
def running_worker(**kwargs) -> Iterator[Worker]:
    worker = start_worker(**kwargs)
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(condition: Callable[[], object], *, timeout: float, workers: tuple[Worker, ...] = (),
             what: str = "the condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for worker in workers:
            worker.assert_alive()
        time.sleep(0.25)
    logs = "\n".join(f"--- {w.node}:\n{w.log()[-4000:]}" for w in workers)
    pytest.fail(f"{what} did not happen within {timeout} s\n{logs}")
