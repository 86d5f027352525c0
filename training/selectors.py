"""Reads: training runs, the promotion gate's verdict and the audit trail.

Model versions belong to the deployment, not to one organization: there is one active model for
everyone and one training run at a time. A training run is seen only by the administrators of the
organization that started it (its log names that organization's scans), and runs started without one
(the command line, the Django admin on the developer set) by every administrator. Only administrators
reach these (permissions).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from diagnosis import selectors as diagnosis_selectors
from diagnosis.models import ModelVersion, Organization

from .gate import GateError, judge, side_scores
from .models import LockedTestEvaluation, LockedTestEvaluationFailure, LockedTestSet, ModelPromotion, TrainingRun


def is_training_admin(user: Any) -> bool:
    return diagnosis_selectors.is_organization_admin(user)


def _runs() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("requested_by", "model_version", "organization").order_by(
        "-created_at", "-id"
    )


def training_run_list(*, organization: Organization | None) -> QuerySet[TrainingRun]:
    """The runs an administrator of ``organization`` may see: its own and the deployment's."""
    own = Q(organization__isnull=True)
    if organization is not None:
        own |= Q(organization=organization)
    return _runs().filter(own)


def training_run_get(*, pk: int, organization: Organization | None) -> TrainingRun | None:
    return training_run_list(organization=organization).filter(pk=pk).first()


def training_run_counts() -> dict[str, int]:
    """How many training runs are in each state, every state named (for monitoring)."""
    counts = dict(TrainingRun.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in TrainingRun.Status.values}


def training_run_is_visible(*, run: TrainingRun, organization: Organization | None) -> bool:
    return run.organization_id is None or (organization is not None and run.organization_id == organization.pk)


def training_run_current() -> TrainingRun | None:
    """The run in progress, whoever started it: it blocks every other start on the deployment."""
    return _runs().filter(is_current=True).first()


def locked_test_set_latest() -> LockedTestSet | None:
    return LockedTestSet.objects.order_by("-created_at", "-id").first()


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("training_run").order_by("-created_at", "-id")


def model_version_get(*, pk: int) -> ModelVersion | None:
    return model_version_list().filter(pk=pk).first()


def locked_test_evaluation(*, model_version: ModelVersion, test_set: LockedTestSet | None) -> LockedTestEvaluation | None:
    if test_set is None:
        return None
    return LockedTestEvaluation.objects.filter(model_version=model_version, test_set=test_set).first()


def _training_images(model_version: ModelVersion | None) -> set[str]:
    run = getattr(model_version, "training_run", None) if model_version is not None else None
    return set(run.training_image_hashes) if run is not None else set()


def promotion_gate(*, candidate: ModelVersion, test_set: LockedTestSet | None = None) -> dict[str, Any]:
    """The gate's verdict for making ``candidate`` the active version, figures side by side.

    Both models are scored on the same locked test images, leaving out any image either of them
    trained or stopped early on: normally none, since the split is locked and reviewed copies of test
    images are left out of training, but a model split its own way (an older shipped one) has
    trained on some of them.
    """
    margin = settings.KIDNEYWEB_PROMOTION_MARGIN
    test_set = test_set or locked_test_set_latest()
    active = diagnosis_selectors.model_version_active()
    base: dict[str, Any] = {"candidate_version": candidate.pk, "active_version": active.pk if active else None}
    if active is not None and active.pk == candidate.pk:
        return {**judge(candidate=None, baseline=None, margin=margin, missing="This version is already active."),
                **base, "already_active": True}
    failures = {failure.model_version_id: failure.reason for failure in LockedTestEvaluationFailure.objects.filter(
        model_version__in=[v for v in (candidate, active) if v is not None])}
    base["evaluation_failures"] = {str(pk): reason for pk, reason in failures.items()}

    def failed(version: ModelVersion) -> str:
        return f" Its last evaluation failed: {failures[version.pk]}" if version.pk in failures else ""

    if test_set is None:
        missing = "There is no locked test series yet: the first training run (or evaluation) makes it."
        missing += "".join(failed(v) for v in (candidate, active) if v is not None)
        return {**judge(candidate=None, baseline=None, margin=margin, missing=missing), **base,
                "needs_evaluation": [v.pk for v in (candidate, active) if v is not None]}

    labels = [record["label"] for record in test_set.records]
    evaluations = {
        "candidate": locked_test_evaluation(model_version=candidate, test_set=test_set),
        "baseline": locked_test_evaluation(model_version=active, test_set=test_set) if active else None,
    }
    seen = _training_images(candidate) | _training_images(active)
    seen_by_split = {i for evaluation in evaluations.values() if evaluation for i in evaluation.seen}
    include = [i for i, record in enumerate(test_set.records)
               if record["pixel"] not in seen and i not in seen_by_split]
    sides: dict[str, dict[str, Any] | None] = {}
    missing = []
    try:
        for side, evaluation in evaluations.items():
            sides[side] = side_scores(labels=labels, class_names=evaluation.class_names,
                                      probabilities=evaluation.probabilities, include=include) if evaluation else None
    except GateError as exc:
        return {**judge(candidate=None, baseline=None, margin=margin,
                        missing=f"The models cannot be compared: {exc}."), **base}
    if sides["candidate"] is None:
        missing.append(f"{candidate.name} has not been evaluated on the locked test series yet.{failed(candidate)}")
    if active is not None and sides["baseline"] is None:
        missing.append(f"The active version {active.name} has not been evaluated on the locked test series yet."
                       f"{failed(active)}")
    verdict = judge(candidate=sides["candidate"], baseline=sides["baseline"], margin=margin,
                    has_active=active is not None, missing=" ".join(missing))
    verdict.update(base)
    verdict["needs_evaluation"] = [v.pk for v, side in ((candidate, "candidate"), (active, "baseline"))
                                   if v is not None and sides[side] is None]
    verdict["test_set"] = {"sha256": test_set.sha256, "images": len(test_set.records),
                           "compared": len(include), "left_out": len(test_set.records) - len(include)}
    return verdict


def promotion_list() -> QuerySet[ModelPromotion]:
    return ModelPromotion.objects.select_related("from_version", "to_version", "performed_by").order_by(
        "-created_at", "-id"
    )


def model_version_was_active(*, model_version: ModelVersion) -> bool:
    """Whether the version served before: a promotion made it active or replaced it."""
    return (
        model_version.is_active
        or ModelPromotion.objects.filter(to_version=model_version).exists()
        or ModelPromotion.objects.filter(from_version=model_version).exists()
    )


def attach_locked_test_evaluations(versions: list[ModelVersion], test_set: LockedTestSet | None = None) -> list[ModelVersion]:
    """Give each version ``current_locked_test_evaluation``: its scores on the latest locked test series."""
    test_set = test_set or locked_test_set_latest()
    found = {}
    if test_set is not None:
        evaluations = LockedTestEvaluation.objects.filter(test_set=test_set, model_version__in=versions)
        found = {e.model_version_id: e for e in evaluations.defer("probabilities")}
    for version in versions:
        version.current_locked_test_evaluation = found.get(version.pk)
    return versions


def model_version_patients_read(*, model_version: ModelVersion) -> list[dict[str, Any]]:
    """Per class, how many of its card's test series (patients) the version read right; [] if not recorded.

    Errors on new patients come in whole series, so this says more to an administrator than slice recall.
    """
    found = ((model_version.card or {}).get("metrics") or {}).get("test_series_split", {}).get("by_series") or {}
    series = found.get("series") or []
    return [{"label": label, "right": sum(1 for row in series if row["label"] == label and row["verdict"] == label),
             "series": sum(1 for row in series if row["label"] == label)}
            for label in model_version.class_names if any(row["label"] == label for row in series)]
