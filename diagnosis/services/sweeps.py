"""Sending a task again for rows whose task the broker lost (Redis keeps no queue across a restart)."""

from __future__ import annotations

import datetime
from functools import partial
from typing import Callable

from django.db import transaction
from django.db.models import QuerySet


def resend_stale(stale: QuerySet, *, now: datetime.datetime, enqueue: Callable[[int], None]) -> list[int]:
    """Mark each row of ``stale`` (which must have ``resent_at``) sent again, and send its task once that
    commits. Returns their ids. The UPDATE repeats the query's conditions, so a row a worker finished since
    the query is left alone."""
    resent = []
    for pk in stale.values_list("pk", flat=True):
        with transaction.atomic():
            if stale.filter(pk=pk).update(resent_at=now):
                transaction.on_commit(partial(enqueue, pk))
                resent.append(pk)
    return resent
