"""How a model version does on an organization's own patients, judged by its reviewers, next to what its card
promised on the test patients: the watch a hospital keeps on a model after it goes live."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone

from ..models import InputsAlert, ModelVersion, Organization, PerformanceAlert, Prediction, Review
from .records import confidence_threshold
from .reliability import card_accuracy, card_out_of_scope_share, model_reliability

# Below this many reviewed slices a share says too little to compare with the card.
MIN_REVIEWED = 10
WEEKS_SHOWN = 12
_Z95 = 1.959963984540054

# The out-of-scope share is judged on the newest weeks, where a new scanner, protocol or kind of upload shows first
# instead of being diluted by the months before it; from MIN_RESULTS results on, as a rate of 1 in 200 needs many.
RECENT_WEEKS = 4
MIN_RESULTS = 50

BELOW = "below"
ABOVE = "above"
CONSISTENT = "consistent"
TOO_FEW = "too_few"
NO_CARD = "no_card"


def wilson_interval(count: int, of: int, *, effective: float | None = None) -> tuple[float, float] | None:
    """The 95% Wilson score interval of count/of; unlike the normal approximation it stays inside [0, 1] and
    is honest for the small counts of a pilot's first weeks. ``effective`` is the number of independent slices
    the evidence is worth when it is fewer than ``of`` (``effective_size``)."""
    if of <= 0:
        return None
    p, n = count / of, of if effective is None else effective
    denominator = 1 + _Z95**2 / n
    centre = (p + _Z95**2 / (2 * n)) / denominator
    half = _Z95 * math.sqrt(p * (1 - p) / n + _Z95**2 / (4 * n**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def effective_size(clusters: Sequence[tuple[int, int]]) -> float:
    """How many independent slices a share counted over patients is worth: ``clusters`` holds each patient's
    (count, of). Slices of one patient are alike, so twenty of one patient say little more than one does.

    The share's variance between patients (the ratio estimator's, as for a cluster sample) against the variance
    it would have were the slices independent gives the design effect (Kish), and the slices divided by it the
    effective size. It lies between the patients (every slice of a patient read alike) and the slices (patients
    no more alike than chance). A share of 0 or 1, or one patient, shows nothing of how alike a patient's slices
    are, so it then counts the patients."""
    of = sum(n for _, n in clusters)
    patients = sum(1 for _, n in clusters if n)
    if of == 0:
        return 0.0
    p = sum(c for c, _ in clusters) / of
    if patients < 2 or p in (0.0, 1.0):
        return float(patients)
    between = patients / (patients - 1) * sum((c - p * n) ** 2 for c, n in clusters) / of**2
    if between == 0:
        return float(of)
    return min(float(of), max(float(patients), p * (1 - p) / between))


@dataclass(frozen=True)
class Measure:
    """One share measured on the organization's reviewed slices, next to the card's value of it."""

    name: str
    count: int
    of: int
    card: float | None
    # Each patient's (count, of): slices of one patient are alike, so ten slices of one patient say less than ten
    # patients do, and a shortfall from a single hard case reads differently from a broad one. Empty: the slices
    # are taken as independent.
    clusters: tuple[tuple[int, int], ...] = ()

    @property
    def patients(self) -> int:
        """The patients the reviewed slices came from."""
        return sum(1 for _, n in self.clusters if n)

    @property
    def rate(self) -> float | None:
        return self.count / self.of if self.of else None

    @property
    def effective(self) -> float:
        """The independent slices the reviewed ones are worth (``effective_size``)."""
        return effective_size(self.clusters) if self.clusters else float(self.of)

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.count, self.of, effective=self.effective)

    @property
    def verdict(self) -> str:
        """``below`` only when even the interval's upper end is under the card's value: the model is then worse
        here than promised beyond what chance explains (at 2.5% one-sided), with a patient's slices counted as the
        evidence they are worth together, not as so many independent ones."""
        if self.card is None:
            return NO_CARD
        if self.of < MIN_REVIEWED:
            return TOO_FEW
        interval = self.interval
        return BELOW if interval is not None and interval[1] < self.card else CONSISTENT


@dataclass(frozen=True)
class InputsInUse:
    """Of the results of the newest RECENT_WEEKS weeks, the share the version found out of scope, next to the share
    of slices like its training data that it finds so. Needs no review: drift in what is uploaded shows here before
    reviewers have judged enough slices to measure the model."""

    out_of_scope: int
    diagnosed: int
    expected: float | None
    weeks: int = RECENT_WEEKS
    # Each patient's (out of scope, diagnosed): one patient's many odd slices (a series of another protocol, a
    # photographed film uploaded slice by slice) are one odd upload, not many. Empty: the slices are taken as
    # independent.
    clusters: tuple[tuple[int, int], ...] = ()

    @property
    def rate(self) -> float | None:
        return self.out_of_scope / self.diagnosed if self.diagnosed else None

    @property
    def patients(self) -> int:
        """The patients the results came from."""
        return sum(1 for _, n in self.clusters if n)

    @property
    def effective(self) -> float:
        """The independent slices the results are worth (``effective_size``)."""
        return effective_size(self.clusters) if self.clusters else float(self.diagnosed)

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.out_of_scope, self.diagnosed, effective=self.effective)

    @property
    def verdict(self) -> str:
        """``above`` only when even the interval's lower end is over the expected share: more uploads are unlike
        the training data than chance explains, with a patient's slices counted as the evidence they are worth
        together."""
        if self.expected is None:
            return NO_CARD
        if self.diagnosed < MIN_RESULTS:
            return TOO_FEW
        interval = self.interval
        return ABOVE if interval is not None and interval[0] > self.expected else CONSISTENT


@dataclass(frozen=True)
class ClassInUse:
    name: str
    found: Measure  # of the slices reviewers said show this class, the share the AI labelled so (recall)
    right: Measure  # of the AI's labels of this class, the share reviewers kept (precision)
    diagnosed: int  # results with this label (in scope)


@dataclass(frozen=True)
class WeekInUse:
    start: datetime.date  # the Monday
    diagnosed: int = 0  # finished results
    failed: int = 0
    out_of_scope: int = 0
    uncertain: int = 0  # in scope, top probability under the version's confidence threshold
    reviewed: int = 0  # of this week's results, those whose current review judged them
    agreed: int = 0
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.reviewed if self.reviewed else None


@dataclass(frozen=True)
class PerformanceInUse:
    model_version: ModelVersion
    threshold: float
    diagnosed: int
    failed: int
    out_of_scope: int
    uncertain: int
    accuracy: Measure  # agreement of the current reviews with the AI label: accuracy, reviewers taken as truth
    classes: list[ClassInUse]
    weeks: list[WeekInUse]  # the last WEEKS_SHOWN weeks, newest first
    inputs: InputsInUse

    @property
    def reviewed(self) -> int:
        return self.accuracy.of

    @property
    def measures(self) -> list[Measure]:
        return [self.accuracy] + [m for c in self.classes for m in (c.found, c.right)]

    @property
    def below(self) -> list[Measure]:
        return [m for m in self.measures if m.verdict == BELOW]


def model_versions_in_use(*, organization: Organization) -> list[ModelVersion]:
    """The versions that diagnosed the organization's scans, and the active one, newest first."""
    used = Prediction.objects.filter(scan__patient__organization=organization).values("model_version")
    return list(ModelVersion.objects.filter(Q(pk__in=used) | Q(is_active=True)).order_by("-created_at", "-pk"))


def model_version_watched(*, organization: Organization) -> ModelVersion | None:
    """The version whose performance in use is shown unless another is asked for: the active one, or else the
    newest that diagnosed the organization's scans."""
    versions = model_versions_in_use(organization=organization)
    return next((v for v in versions if v.is_active), versions[0] if versions else None)


def _monday(day: datetime.date) -> datetime.date:
    return day - datetime.timedelta(days=day.weekday())


def _week_of(value: datetime.datetime | None) -> datetime.date | None:
    if value is None:
        return None
    return _monday((timezone.localtime(value) if timezone.is_aware(value) else value).date())


def model_inputs_in_use(
    *, organization: Organization | int, model_version: ModelVersion, today: datetime.date | None = None
) -> InputsInUse:
    """The version's out-of-scope share over the newest RECENT_WEEKS weeks (this one included) in the organization,
    withdrawn scans left out, counted per patient. One aggregate (benchmarks/worklist.py times it)."""
    first = _monday(today or timezone.localdate()) - datetime.timedelta(weeks=RECENT_WEEKS - 1)
    clusters = tuple(Prediction.objects.filter(
        scan__patient__organization=organization, model_version=model_version, scan__withdrawn_at__isnull=True,
        status=Prediction.Status.DONE,
        finished_at__gte=timezone.make_aware(datetime.datetime.combine(first, datetime.time.min)),
    ).values("scan__patient_id").annotate(out_of_scope=Count("id", filter=Q(out_of_scope=True)), diagnosed=Count("id"))
        .order_by().values_list("out_of_scope", "diagnosed"))
    return InputsInUse(out_of_scope=sum(c for c, _ in clusters), diagnosed=sum(n for _, n in clusters),
                       expected=card_out_of_scope_share(model_version=model_version), clusters=clusters)


def inputs_alert_open(*, organization: Organization | int) -> InputsAlert | None:
    """The open alert of unusual uploads of the active version in the organization: what the worklist warns
    administrators of. Read from the alert the scheduled judgement keeps, so the warning and the notification agree
    and the worklist does not count results on every load."""
    return (InputsAlert.objects.filter(organization=organization, cleared_at__isnull=True, model_version__is_active=True)
            .select_related("model_version").first())


def model_performance_in_use(
    *, organization: Organization, model_version: ModelVersion, today: datetime.date | None = None,
    weeks_shown: int | None = WEEKS_SHOWN,
) -> PerformanceInUse:
    """The version's results in the organization (withdrawn scans left out), and the current review of each
    slice whose judged result it made, measured against its card's series test split. ``weeks`` holds the newest
    ``weeks_shown`` weeks, newest first; None: every week since the version's first result here."""
    threshold = confidence_threshold(model_version)
    results = (
        Prediction.objects.filter(scan__patient__organization=organization, model_version=model_version,
                                  scan__withdrawn_at__isnull=True,
                                  status__in=[Prediction.Status.DONE, Prediction.Status.FAILED])
        .annotate(week=TruncWeek("finished_at"))
        .values("week", "status", "out_of_scope", "label")
        .annotate(n=Count("id"), uncertain=Count("id", filter=Q(confidence__lt=threshold) | Q(confidence__isnull=True)))
        .order_by()
    )
    # The current review of a slice is the one no later review of it follows. Asked as "no newer one exists", the
    # database answers with one anti-join instead of a subquery per review: 3 times faster at 20,000 reviews.
    newer = Review.objects.filter(scan=OuterRef("scan")).filter(
        Q(reviewed_at__gt=OuterRef("reviewed_at")) | Q(reviewed_at=OuterRef("reviewed_at"), pk__gt=OuterRef("pk")))
    current = Review.objects.filter(~Exists(newer), scan__patient__organization=organization,
                                    prediction__model_version=model_version, agrees_with_ai__isnull=False,
                                    scan__withdrawn_at__isnull=True)
    judged = (
        current.annotate(week=TruncWeek("prediction__finished_at"))
        .values("week", "prediction__label", "label")
        .annotate(n=Count("id"))
        .order_by()
    )

    # Each patient's slices per pair of labels (one row per patient and pair, not per slice): the shares' intervals
    # count a patient's slices as the evidence they are together. Gathered in one pass into each patient's
    # [kept, reviewed] for the accuracy ("all"), per reviewer's label ("found") and per AI label ("right").
    per_patient: dict[tuple[str, str], dict[int, list[int]]] = {}
    everyone = per_patient.setdefault(("all", ""), {})
    rows = current.values_list("scan__patient_id", "prediction__label", "label").annotate(n=Count("id")).order_by()
    for patient, ai, truth, n in rows:
        kept = n if ai == truth else 0
        for table in (everyone, per_patient.setdefault(("found", truth), {}), per_patient.setdefault(("right", ai), {})):
            counts = table.get(patient)
            if counts is None:
                table[patient] = [kept, n]
            else:
                counts[0] += kept
                counts[1] += n

    def clusters(kind: str, name: str = "") -> tuple[tuple[int, int], ...]:
        return tuple(map(tuple, per_patient.get((kind, name), {}).values()))

    this_monday = _monday(today or timezone.localdate())
    if weeks_shown is None:
        results = list(results)
        first = min((week for row in results if (week := _week_of(row["week"])) is not None), default=this_monday)
        weeks_shown = max(1, (this_monday - first).days // 7 + 1)
    shown = [this_monday - datetime.timedelta(weeks=k) for k in range(weeks_shown)]
    weeks: dict[datetime.date, dict] = {monday: {"labels": {}} for monday in shown}
    totals = {"diagnosed": 0, "failed": 0, "out_of_scope": 0, "uncertain": 0}
    labelled: dict[str, int] = {}

    def bump(week: datetime.date | None, key: str, n: int) -> None:
        totals[key] += n
        if week in weeks:
            weeks[week][key] = weeks[week].get(key, 0) + n

    for row in results:
        week, n = _week_of(row["week"]), row["n"]
        if row["status"] == Prediction.Status.FAILED:
            bump(week, "failed", n)
            continue
        bump(week, "diagnosed", n)
        if row["out_of_scope"]:
            bump(week, "out_of_scope", n)
            continue
        bump(week, "uncertain", row["uncertain"])
        labelled[row["label"]] = labelled.get(row["label"], 0) + n
        if week in weeks:
            weeks[week]["labels"][row["label"]] = weeks[week]["labels"].get(row["label"], 0) + n

    said_by_ai: dict[str, list[int]] = {}  # AI label -> [kept, reviewed]
    said_by_reviewer: dict[str, list[int]] = {}  # reviewer's label -> [AI said the same, reviewed]
    agreed = reviewed = 0
    for row in judged:
        ai, truth, n, week = row["prediction__label"], row["label"], row["n"], _week_of(row["week"])
        kept = n if ai == truth else 0
        reviewed, agreed = reviewed + n, agreed + kept
        for table, key in ((said_by_ai, ai), (said_by_reviewer, truth)):
            counts = table.setdefault(key, [0, 0])
            counts[0] += kept
            counts[1] += n
        if week in weeks:
            weeks[week]["reviewed"] = weeks[week].get("reviewed", 0) + n
            weeks[week]["agreed"] = weeks[week].get("agreed", 0) + kept

    card = model_reliability(model_version=model_version)
    card_classes = {c.name: c for c in card.classes} if card else {}
    classes = []
    for name in model_version.class_names or sorted(set(said_by_ai) | set(said_by_reviewer)):
        tested = card_classes.get(name)
        found, right = said_by_reviewer.get(name, [0, 0]), said_by_ai.get(name, [0, 0])
        classes.append(ClassInUse(
            name=name,
            found=Measure(f"{name} found", found[0], found[1], tested.found if tested else None,
                          clusters=clusters("found", name)),
            right=Measure(f"{name} labels kept", right[0], right[1], tested.right if tested else None,
                          clusters=clusters("right", name)),
            diagnosed=labelled.get(name, 0),
        ))
    return PerformanceInUse(
        model_version=model_version,
        inputs=model_inputs_in_use(organization=organization, model_version=model_version, today=today),
        threshold=threshold,
        accuracy=Measure("AI labels kept", agreed, reviewed, card_accuracy(model_version=model_version),
                         clusters=clusters("all")),
        classes=classes,
        weeks=[WeekInUse(start=monday, **weeks[monday]) for monday in shown],
        **totals,
    )


def performance_alert_open(
    *, organization: Organization | int, model_version: ModelVersion | None = None
) -> PerformanceAlert | None:
    """The open alert of ``model_version`` (by default the active version) in the organization: what the worklist
    warns administrators of, and what a result by that version cautions its reader with. Read from the alert,
    which each review keeps up to date, so pages need not measure the model on every load."""
    alerts = PerformanceAlert.objects.filter(organization=organization, cleared_at__isnull=True)
    if model_version is None:
        alerts = alerts.filter(model_version__is_active=True)
    else:
        alerts = alerts.filter(model_version=model_version)
    return alerts.select_related("model_version").first()


def performance_alerts(*, organization: Organization, model_version: ModelVersion) -> list[PerformanceAlert]:
    """When the version was below its card in the organization, newest first (the open one, if any, first)."""
    return list(PerformanceAlert.objects.filter(organization=organization, model_version=model_version))


def inputs_alerts(*, organization: Organization, model_version: ModelVersion) -> list[InputsAlert]:
    """When the version was sent unusually many images unlike its training data in the organization, newest first."""
    return list(InputsAlert.objects.filter(organization=organization, model_version=model_version))
