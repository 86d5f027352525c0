"""The worklist: the organization's unreviewed scans, most urgent first, where a clinician reading through
it goes next, and which scans a colleague has open."""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import (BooleanField, Case, Exists, F, FilteredRelation, IntegerField, OuterRef, Q, QuerySet,
                              Subquery, Value, When)
from django.utils import timezone

from ..models import PatientAccess, Prediction, Review, Scan
from .records import _threshold_expression, scan_list
from .tenancy import UserLike

# --- Worklist ---------------------------------------------------------------------------------------

# Urgency ranks, most urgent first. Results the AI cannot vouch for come first, then by how serious
# the suspected finding is; queued and running ones last, since nobody can act on them yet.
URGENCY_NEEDS_REVIEW = 0
URGENCY_BY_LABEL = {"Tumor": 1, "Stone": 2, "Cyst": 3, "Normal": 4}
URGENCY_OTHER_LABEL = 5
URGENCY_PENDING = 6

WORKLIST_STATUSES = {
    "needs_review": "Needs review",
    "result": "AI result",
    "pending": "In progress",
}


# A scan another clinician opened on the web this recently is probably being read: "save and open the next"
# passes it by while others wait, and the worklist and the scan page say who has it open. Nothing is locked:
# a second reading is allowed, and the newer review counts.
OPENED_BY_OTHER_WINDOW = datetime.timedelta(minutes=10)


def _openings_by_others(*, user: UserLike, **scan: Any) -> QuerySet[PatientAccess]:
    return (PatientAccess.objects.filter(what=PatientAccess.What.SCAN, channel=PatientAccess.Channel.WEB,
                                         at__gt=timezone.now() - OPENED_BY_OTHER_WINDOW, **scan)
            .exclude(user_id=user.pk).order_by("-at", "-id"))


def scan_opened_by_other(*, user: UserLike, scan: Scan) -> PatientAccess | None:
    """The newest opening of the scan's page by another member in the last 10 minutes: they may be reading it."""
    return _openings_by_others(user=user, scan=scan).select_related("user").first()


def _with_latest_prediction(scans: QuerySet[Scan]) -> QuerySet[Scan]:
    """The scans joined to their newest prediction as ``latest`` (none: nulls). One join instead of a subquery per
    field: PostgreSQL runs each repeated subquery again, and the urgency repeats them, 5 times slower at 50,000
    unreviewed scans."""
    newest = Prediction.objects.filter(scan=OuterRef("pk")).order_by("-queued_at", "-id").values("id")[:1]
    return scans.alias(latest=FilteredRelation("predictions", condition=Q(predictions__id=Subquery(newest))))


def _needs_review_expression() -> Q:
    # Kept in step with prediction_uncertainty.
    return Q(ai_status=Prediction.Status.FAILED) | (
        Q(ai_status=Prediction.Status.DONE)
        & (Q(ai_out_of_scope=True) | Q(ai_confidence__isnull=True) | Q(ai_confidence__lt=F("ai_threshold")))
    )


def worklist(
    *,
    user: UserLike,
    status: str | None = None,
    label: str | None = None,
    uploaded_from: datetime.date | None = None,
    uploaded_to: datetime.date | None = None,
) -> QuerySet[Scan]:
    """The organization's unreviewed scans (not withdrawn), most urgent first, then oldest first; ordered by
    the database.

    Each scan carries ``ai_status``, ``ai_label``, ``ai_confidence``, ``needs_review`` and ``urgency``, and
    ``opened_by`` and ``opened_at``: the username of another member who opened it on the web in the last 10
    minutes and when (None when nobody did).
    """
    scans = _with_latest_prediction(scan_list(user=user)).annotate(
        reviewed=Exists(Review.objects.filter(scan=OuterRef("pk"))),
        ai_status=F("latest__status"),
        ai_label=F("latest__label"),
        ai_confidence=F("latest__confidence"),
        ai_out_of_scope=F("latest__out_of_scope"),
        ai_threshold=_threshold_expression("latest__"),
        opened_by=Subquery(_openings_by_others(user=user, scan=OuterRef("pk")).values("user__username")[:1]),
        opened_at=Subquery(_openings_by_others(user=user, scan=OuterRef("pk")).values("at")[:1]),
    ).filter(reviewed=False, withdrawn_at__isnull=True)
    needs_review = _needs_review_expression()
    scans = scans.annotate(
        needs_review=Case(When(needs_review, then=Value(True)), default=Value(False), output_field=BooleanField()),
        urgency=Case(
            When(needs_review, then=Value(URGENCY_NEEDS_REVIEW)),
            # A scan with no diagnosis at all waits with those in progress, not among the results.
            When(Q(ai_status__isnull=True) | ~Q(ai_status=Prediction.Status.DONE), then=Value(URGENCY_PENDING)),
            *[When(ai_label=name, then=Value(rank)) for name, rank in URGENCY_BY_LABEL.items()],
            default=Value(URGENCY_OTHER_LABEL),
            output_field=IntegerField(),
        ),
    )
    if status == "needs_review":
        scans = scans.filter(needs_review)
    elif status == "result":
        scans = scans.filter(ai_status=Prediction.Status.DONE).exclude(needs_review)
    elif status == "pending":
        scans = scans.filter(urgency=URGENCY_PENDING)  # with any scan that has no diagnosis yet, as the list sorts it
    if label:
        scans = scans.filter(ai_status=Prediction.Status.DONE, ai_label=label)
    if uploaded_from:
        scans = scans.filter(uploaded_at__date__gte=uploaded_from)
    if uploaded_to:
        scans = scans.filter(uploaded_at__date__lte=uploaded_to)
    return scans.order_by("urgency", "uploaded_at", "id")


def worklist_next(
    *,
    user: UserLike,
    after: Scan,
    status: str | None = None,
    label: str | None = None,
    uploaded_from: datetime.date | None = None,
    uploaded_to: datetime.date | None = None,
) -> Scan | None:
    """The most urgent unreviewed scan other than ``after`` that the worklist with these filters shows: where a
    clinician reading through it goes next. One whose diagnosis is still running comes last, as on the worklist;
    one a colleague has open comes after all the others, so that two readers do not read the same scans."""
    scans = worklist(user=user, status=status, label=label, uploaded_from=uploaded_from, uploaded_to=uploaded_to)
    scans = scans.exclude(pk=after.pk)
    # The few scans open elsewhere, read once: ordering every row by a per-row subquery costs ten times as much.
    open_elsewhere = list(_openings_by_others(user=user, scan__isnull=False).values_list("scan_id", flat=True))
    return scans.exclude(pk__in=open_elsewhere).first() or scans.first()


def worklist_remaining(*, user: UserLike, after: Scan, filters: dict[str, Any] | None = None) -> int:
    """How many unreviewed scans other than ``after`` the worklist with these filters (``worklist``'s keyword
    arguments) shows: what is left to read after this one."""
    return worklist(user=user, **(filters or {})).exclude(pk=after.pk).count()
