"""How the deployment is running, for monitoring (GET /metrics): diagnoses by state and how long the oldest has
waited, inference time, each organization's review backlog and open alerts, notifications and the workers'
heartbeats. Read from the
database at each scrape, so every web process answers the same and nothing is lost on a restart."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from ..models import (
    ApiToken, DicomStoreRefusal, InputsAlert, Membership, ModelVersion, Organization, PacsDelivery, PatientErasure, PerformanceAlert, RecordExport,
    Prediction, Review, Scan, WebhookDelivery, WorkerHeartbeat,
)

RECENT = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class OperationsSnapshot:
    predictions: dict[str, int]  # every state, each diagnosis ever queued counted once
    oldest_waiting_seconds: float | None  # the oldest queued or running diagnosis; None when none waits
    recent_done: int  # diagnoses finished in the last hour
    recent_failed: int
    recent_inference_ms: int  # their inference time in all
    unreviewed_scans: dict[str, int]  # organization slug -> what its worklist holds
    open_alerts: dict[tuple[str, str], int]  # (organization slug, "performance" | "inputs") -> open alerts
    notifications: dict[str, int]  # result notifications by state
    archive: dict[str, int]  # AI results sent to the organizations' archives (PACS), by state
    heartbeats: dict[str, float]  # worker name -> seconds since it was last seen
    unresolved_refusals: int  # slices the archives sent that were refused and not stored since
    # organization slug -> seconds until the TLS client certificate kidneyweb presents to its archive expires
    client_certificates: dict[str, float]
    # (organization slug, "expired" or "expiring") -> its members' API tokens past, or within EXPIRY_NOTICE of,
    # the organization's token lifetime
    api_tokens: dict[tuple[str, str], int]
    active_model: str | None
    # Erasures whose images are still in storage: the worker deletes them after each erasure (its sweep again).
    erasure_files_pending: int = 0
    # Notes asking an archive to delete an erased patient's captures that it has not stored (pending or failed), and
    # not given up: each keeps the patient's name and ID until it is stored or given up.
    erasure_notes_unstored: int = 0
    # Whole-record exports asked for and not built yet (queued or being built).
    record_exports_pending: int = 0
    # organization slug -> its active administrators; 0 leaves nobody to manage its members and connections
    administrators: dict[str, int] = field(default_factory=dict)


def operations_snapshot(*, now: datetime.datetime | None = None) -> OperationsSnapshot:
    """The deployment's state now, across organizations (a handful of aggregate queries)."""
    now = now or timezone.now()
    by_status = dict(Prediction.objects.values_list("status").annotate(n=Count("id")).order_by())
    waiting = Prediction.objects.filter(status__in=[Prediction.Status.QUEUED, Prediction.Status.RUNNING]).aggregate(
        oldest=Min("queued_at"))["oldest"]
    recent = Prediction.objects.filter(finished_at__gte=now - RECENT).aggregate(
        done=Count("id", filter=Q(status=Prediction.Status.DONE)),
        failed=Count("id", filter=Q(status=Prediction.Status.FAILED)),
        inference=Sum("inference_ms", filter=Q(status=Prediction.Status.DONE)))
    slugs = dict(Organization.objects.values_list("pk", "slug"))
    unreviewed = dict(Scan.objects.filter(withdrawn_at__isnull=True)
                      .exclude(pk__in=Review.objects.values("scan_id"))
                      .values_list("patient__organization").annotate(n=Count("id")).order_by())
    alerts = {(slugs[pk], kind): 0 for pk in slugs for kind in ("performance", "inputs")}
    for kind, model in (("performance", PerformanceAlert), ("inputs", InputsAlert)):
        for pk, n in (model.objects.filter(cleared_at__isnull=True).values_list("organization")
                      .annotate(n=Count("id")).order_by()):
            alerts[(slugs[pk], kind)] = n
    deliveries = dict(WebhookDelivery.objects.values_list("status").annotate(n=Count("id")).order_by())
    archived = dict(PacsDelivery.objects.values_list("status").annotate(n=Count("id")).order_by())
    return OperationsSnapshot(
        predictions={status: by_status.get(status, 0) for status in Prediction.Status.values},
        oldest_waiting_seconds=(now - waiting).total_seconds() if waiting else None,
        recent_done=recent["done"], recent_failed=recent["failed"], recent_inference_ms=recent["inference"] or 0,
        unreviewed_scans={slug: unreviewed.get(pk, 0) for pk, slug in slugs.items()},
        open_alerts=alerts,
        notifications={status: deliveries.get(status, 0) for status in WebhookDelivery.Status.values},
        archive={status: archived.get(status, 0) for status in PacsDelivery.Status.values},
        heartbeats={name: (now - seen).total_seconds()
                    for name, seen in WorkerHeartbeat.objects.values_list("name", "seen_at")},
        unresolved_refusals=DicomStoreRefusal.objects.filter(resolved_at__isnull=True).count(),
        active_model=ModelVersion.objects.filter(is_active=True).values_list("name", flat=True).first(),
        client_certificates=_client_certificates_expiry(now),
        api_tokens=_api_tokens_expiry(now),
        erasure_files_pending=PatientErasure.objects.filter(files_removed_at__isnull=True).count(),
        erasure_notes_unstored=PacsDelivery.objects.filter(
            erasure__isnull=False, erasure__archive_given_up_at=None).exclude(
            status=PacsDelivery.Status.DELIVERED).count(),
        record_exports_pending=RecordExport.objects.filter(status__in=RecordExport.PENDING).count(),
        administrators=_administrators(slugs),
    )


def _administrators(slugs: dict[int, str]) -> dict[str, int]:
    active = dict(Membership.objects.filter(role=Membership.Role.ADMIN, user__is_active=True)
                  .values_list("organization").annotate(n=Count("id")).order_by())
    return {slug: active.get(pk, 0) for pk, slug in slugs.items()}


def _api_tokens_expiry(now: datetime.datetime) -> dict[tuple[str, str], int]:
    from .staff import api_tokens_with_lifetime

    counts: dict[tuple[str, str], int] = {}
    for token in api_tokens_with_lifetime():
        expires = token.expires_at(token.lifetime_days)
        state = "expired" if expires <= now else "expiring" if expires - now <= ApiToken.EXPIRY_NOTICE else None
        if state:
            counts[(token.organization_slug, state)] = counts.get((token.organization_slug, state), 0) + 1
    for slug in Organization.objects.filter(api_token_days__isnull=False).values_list("slug", flat=True):
        for state in ("expired", "expiring"):
            counts.setdefault((slug, state), 0)
    return counts


def _client_certificates_expiry(now: datetime.datetime) -> dict[str, float]:
    from .staff import certificate_summary

    return {slug: (certificate_summary(chain).not_after - now).total_seconds()
            for slug, chain in Organization.objects.exclude(pacs_client_certificate="")
            .values_list("slug", "pacs_client_certificate")}
