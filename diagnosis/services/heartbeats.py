"""Heartbeats of background workers: what /healthz reports about them."""

from __future__ import annotations

from django.utils import timezone

from ..models import WorkerHeartbeat


def worker_heartbeat_record(*, name: str) -> None:
    WorkerHeartbeat.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})
