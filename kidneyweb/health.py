"""Liveness and readiness: GET /healthz answers 200 once the database and the broker answer, and says
when the inference worker was last seen."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from diagnosis import selectors
from diagnosis.tasks import INFERENCE_WORKER

from .celery import app as celery_app

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 3.0


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"; the log has the detail
        logger.warning("healthz: database check failed: %r", exc)
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _check_broker() -> str:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("healthz: broker check failed: %r", exc)
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _check_inference_worker() -> str:
    try:
        seen = selectors.worker_last_seen(name=INFERENCE_WORKER)
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    if seen is None:
        return "not seen yet"
    silent = (timezone.now() - seen).total_seconds()
    # Its sweep runs every KIDNEYWEB_PREDICTION_SWEEP_SECONDS; three missed in a row mean it is gone.
    if silent > 3 * settings.KIDNEYWEB_PREDICTION_SWEEP_SECONDS:
        return f"not seen for {int(silent)} s"
    return "ok"


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    # Only the class name of an error is shown: the endpoint is public and must not leak hosts.
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    # Reported, not judged: the web server is ready without a worker (uploads wait in the queue), and the
    # worker containers start only once the web server is healthy. Monitoring should alert on it.
    checks["inference_worker"] = _check_inference_worker() if checks["database"] == "ok" else "unknown"
    return JsonResponse(checks, status=200 if healthy else 503)
