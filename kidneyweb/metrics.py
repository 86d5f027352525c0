"""GET /metrics: the deployment's state in Prometheus' text format, for the hospital's monitoring.

Off unless ``KIDNEYWEB_METRICS_TOKEN`` is set; a scraper then sends it as a bearer token. The figures are counts,
not patient data, but they say how busy a hospital's radiology is, so they are not public. Everything is read at
scrape time (selectors.operations_snapshot, the broker's queue lengths): the web processes keep no counters of
their own that would differ between them or reset on a restart.
"""

from __future__ import annotations

import hmac
import logging
from typing import Iterator

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from diagnosis import selectors
from training import selectors as training_selectors

from .celery import app as celery_app

logger = logging.getLogger(__name__)

QUEUES = ("inference", "training", "celery")


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each Celery queue of the broker; empty when the broker does not answer."""
    lengths: dict[str, int] = {}
    try:
        with celery_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
            with connection.channel() as channel:
                for name in QUEUES:
                    # Declared as the workers declare them (a no-op when they exist): a passive declaration is
                    # refused for an empty Redis queue, which has no key, and wrongly so under a key prefix.
                    lengths[name] = channel.queue_declare(queue=name, durable=True, auto_delete=False).message_count
    except Exception as exc:  # a broker that is down shows as missing figures, and /healthz says why
        logger.warning("metrics: broker queue lengths not read: %r", exc)
    return lengths


class DeploymentCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        snapshot = selectors.operations_snapshot()
        predictions = CounterMetricFamily("kidneyweb_predictions", "Diagnoses ever queued, by their state now.",
                                          labels=["status"])
        for status, count in snapshot.predictions.items():
            predictions.add_metric([status], count)
        yield predictions
        yield GaugeMetricFamily("kidneyweb_prediction_oldest_waiting_seconds",
                                "How long the oldest queued or running diagnosis has waited; 0 when none waits.",
                                value=snapshot.oldest_waiting_seconds or 0)
        recent = GaugeMetricFamily("kidneyweb_predictions_last_hour", "Diagnoses finished in the last hour.",
                                   labels=["status"])
        recent.add_metric(["done"], snapshot.recent_done)
        recent.add_metric(["failed"], snapshot.recent_failed)
        yield recent
        yield GaugeMetricFamily("kidneyweb_inference_seconds_last_hour",
                                "Inference time of the diagnoses done in the last hour, in all (divide by their "
                                "count for the mean).", value=snapshot.recent_inference_ms / 1000)
        unreviewed = GaugeMetricFamily("kidneyweb_unreviewed_scans", "Scans no clinician has reviewed yet (each "
                                       "organization's worklist).", labels=["organization"])
        for slug, count in snapshot.unreviewed_scans.items():
            unreviewed.add_metric([slug], count)
        yield unreviewed
        alerts = GaugeMetricFamily("kidneyweb_open_alerts", "Open model alerts: performance below the card, unusual "
                                   "uploads.", labels=["organization", "kind"])
        for (slug, kind), count in snapshot.open_alerts.items():
            alerts.add_metric([slug, kind], count)
        yield alerts
        runs = GaugeMetricFamily("kidneyweb_training_runs", "Training runs by state.", labels=["status"])
        for status, count in training_selectors.training_run_counts().items():
            runs.add_metric([status], count)
        yield runs
        notifications = GaugeMetricFamily("kidneyweb_notifications", "Result notifications by state.",
                                          labels=["status"])
        for status, count in snapshot.notifications.items():
            notifications.add_metric([status], count)
        yield notifications
        archive = GaugeMetricFamily("kidneyweb_archive_deliveries", "AI results sent to the archives (PACS) by state: "
                                    "failed ones were not stored (the Members page lists them).", labels=["status"])
        for status, count in snapshot.archive.items():
            archive.add_metric([status], count)
        yield archive
        heartbeats = GaugeMetricFamily("kidneyweb_worker_last_seen_seconds", "Seconds since the worker last ran its "
                                       "scheduled sweep.", labels=["worker"])
        for name, seconds in snapshot.heartbeats.items():
            heartbeats.add_metric([name], seconds)
        yield heartbeats
        yield GaugeMetricFamily("kidneyweb_dicom_store_refusals_unresolved", "Slices the archives sent that were "
                                "refused and not stored since (the Members page lists them).",
                                value=snapshot.unresolved_refusals)
        expiry = GaugeMetricFamily("kidneyweb_archive_client_certificate_expiry_seconds", "Seconds until the TLS "
                                   "client certificate kidneyweb presents to the organization's archive expires "
                                   "(negative: expired, and the archive refuses it).", labels=["organization"])
        for slug, seconds in snapshot.client_certificates.items():
            expiry.add_metric([slug], seconds)
        yield expiry
        tokens = GaugeMetricFamily("kidneyweb_api_tokens", "API tokens under the organization's token lifetime: "
                                   "expired (refused; issue new ones), or expiring within 14 days.",
                                   labels=["organization", "state"])
        for (slug, state), count in sorted(snapshot.api_tokens.items()):
            tokens.add_metric([slug, state], count)
        yield tokens
        yield GaugeMetricFamily("kidneyweb_erasures_files_pending", "Patient erasures whose images are still in "
                                "storage: the worker deletes them after each erasure; one that stays means storage "
                                "refuses the deletion (the worker's log says why).", value=snapshot.erasure_files_pending)
        yield GaugeMetricFamily("kidneyweb_erasure_archive_notes_unstored", "Notes asking an archive to delete an "
                                "erased patient's AI results that it has not stored (pending or failed): each keeps "
                                "the patient's name and ID until it is; send the failed ones again, or give up "
                                "(Members page; given up by itself KIDNEYWEB_ERASURE_ARCHIVE_DAYS after the erasure).",
                                value=snapshot.erasure_notes_unstored)
        yield GaugeMetricFamily("kidneyweb_record_exports_pending", "Whole-record exports asked for and not built "
                                "yet (queued or being built, on the exports worker).",
                                value=snapshot.record_exports_pending)
        administrators = GaugeMetricFamily("kidneyweb_organization_administrators", "Active administrators of each "
                                           "organization: at 0 nobody can manage its members, API tokens and "
                                           "connections (add one: manage.py create_organization_admin).",
                                           labels=["organization"])
        for slug, count in sorted(snapshot.administrators.items()):
            administrators.add_metric([slug], count)
        yield administrators
        model = GaugeMetricFamily("kidneyweb_active_model_info", "The model version that diagnoses new scans.",
                                  labels=["name"])
        if snapshot.active_model:
            model.add_metric([snapshot.active_model], 1)
        yield model
        queues = GaugeMetricFamily("kidneyweb_queue_messages", "Tasks waiting in each broker queue.", labels=["queue"])
        for name, count in queue_lengths().items():
            queues.add_metric([name], count)
        yield queues


def _authorized(request: HttpRequest) -> bool:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              settings.KIDNEYWEB_METRICS_TOKEN.encode())


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.KIDNEYWEB_METRICS_TOKEN:
        raise Http404("Metrics are off: set KIDNEYWEB_METRICS_TOKEN.")
    if not _authorized(request):
        response = HttpResponse("Send the metrics token: Authorization: Bearer <KIDNEYWEB_METRICS_TOKEN>.\n",
                                status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
