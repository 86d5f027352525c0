"""Runs whose worker died are failed, not left running: by heartbeat, by process, by a restarted worker."""

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from training import services
from training.models import TrainingRun
from training.services.execution import training_run_execute

from .factories import TrainingRunFactory

pytestmark = pytest.mark.django_db


def running(**fields) -> TrainingRun:
    now = timezone.now()
    return TrainingRunFactory(**{"status": "running", "started_at": now, "heartbeat_at": now, **fields})


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_without_heartbeat_for_too_long_is_failed(settings):
    settings.KIDNEYWEB_TRAINING_STALE_SECONDS = 60
    stale = running(worker_node="training@elsewhere", heartbeat_at=timezone.now() - timedelta(seconds=61))

    assert services.training_runs_fail_orphaned() == [stale.pk]

    stale.refresh_from_db()
    assert stale.status == "failed" and not stale.is_current
    assert "No sign of life from its worker (training@elsewhere)" in stale.failure_reason


def test_a_run_with_a_recent_heartbeat_is_left_running(settings):
    settings.KIDNEYWEB_TRAINING_STALE_SECONDS = 60
    run = running(worker_node="training@elsewhere", heartbeat_at=timezone.now() - timedelta(seconds=30))

    assert services.training_runs_fail_orphaned() == []
    assert TrainingRun.objects.get(pk=run.pk).status == "running"


def test_a_run_whose_process_on_this_machine_is_gone_is_failed_at_once():
    run = running(worker_node=f"training@{socket.gethostname()}", worker_pid=dead_pid())

    assert services.training_runs_fail_orphaned() == [run.pk]
    assert "stopped during the run" in TrainingRun.objects.get(pk=run.pk).failure_reason


def test_a_run_whose_process_is_alive_is_left_running():
    run = running(worker_node=f"training@{socket.gethostname()}", worker_pid=os.getpid())

    assert services.training_runs_fail_orphaned() == []
    assert TrainingRun.objects.get(pk=run.pk).status == "running"


def test_a_restarted_worker_fails_the_runs_of_its_previous_life():
    run = running(worker_node="training@box", worker_pid=os.getpid())

    assert services.training_runs_fail_orphaned(restarted_node="celery@box") == []
    assert services.training_runs_fail_orphaned(restarted_node="training@box") == [run.pk]
    assert "was restarted" in TrainingRun.objects.get(pk=run.pk).failure_reason


def test_a_second_delivery_leaves_a_live_run_alone_and_fails_a_dead_one():
    live = running(worker_node=f"training@{socket.gethostname()}", worker_pid=os.getpid())

    training_run_execute(run_id=live.pk, worker_node="training@other", worker_pid=1)

    live.refresh_from_db()
    assert (live.status, live.worker_node) == ("running", f"training@{socket.gethostname()}")

    live.worker_pid = dead_pid()
    live.save()
    training_run_execute(run_id=live.pk, worker_node="training@other", worker_pid=1)

    live.refresh_from_db()
    assert live.status == "failed" and "stopped during the run" in live.failure_reason


def test_a_worker_start_signal_fails_the_runs_its_node_left_behind():
    from celery.signals import worker_ready

    run = running(worker_node="training@box", worker_pid=os.getpid())

    worker_ready.send(sender=type("Consumer", (), {"hostname": "training@box"})())

    assert TrainingRun.objects.get(pk=run.pk).status == "failed"
