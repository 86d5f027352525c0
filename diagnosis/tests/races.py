"""Two requests that cross, for real, on PostgreSQL: the first writes in a transaction it holds open while the
second runs its checks (which cannot see the first's rows) and waits on the first's row at its own write; then the
first commits, and the second's write fails or goes through."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest


def require_postgresql() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite lets one writer at a time, so two requests cannot cross")


def cross(first: Callable[[], Any], second: Callable[[], Any], *, waits_at: str) -> tuple[Any, Any]:
    """Run ``first`` in a transaction held open, then ``second`` until its statement starting with ``waits_at``
    (e.g. "INSERT") on the scans table waits on a lock, then commit the first. Returns what each returned, or the
    exception the second raised."""
    from django.db import connection, connections, transaction

    written, commit, done = threading.Event(), threading.Event(), {}

    def run_first() -> None:
        try:
            with transaction.atomic():
                done["first"] = first()
                written.set()
                commit.wait(30)
        finally:
            connections.close_all()

    def run_second() -> None:
        try:
            done["second"] = second()
        except Exception as exc:  # noqa: BLE001 - handed to the test to judge
            done["second"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    threads[0].start()
    try:
        assert written.wait(30), "the first request never wrote"
        threads[1].start()
        with connection.cursor() as cursor:
            for _ in range(300):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                               [f"{waits_at} %diagnosis_scan%"])
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"the second request's {waits_at} never waited on the first's row")
    finally:
        commit.set()
        for thread in threads:
            if thread.ident is not None:
                thread.join(30)
    return done.get("first"), done.get("second")
