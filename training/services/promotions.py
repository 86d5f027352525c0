"""Promotion (through the gate), rollback and the audit trail of every change of the active model.

A change takes effect for the next upload at once and in running workers without a restart: each
prediction is created with the version active at that moment, and a worker loads a version it has
not seen before on first use (diagnosis.ml caches classifiers by file path and SHA-256).
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from diagnosis import services as diagnosis_services
from diagnosis.models import ModelVersion

from .. import selectors
from ..models import ModelPromotion
from .evaluations import EvaluationNotQueued, model_version_evaluation_request

logger = logging.getLogger(__name__)

MAX_REASON = 4000


class PromotionRefused(Exception):
    """The gate refused the candidate and no reason was given to override it."""

    def __init__(self, verdict: dict[str, Any]) -> None:
        self.verdict = verdict
        super().__init__(self.message)

    @property
    def message(self) -> str:
        reasons = " ".join(self.verdict.get("reasons") or ["The promotion gate refused it."])
        if self.verdict.get("evaluation_queued"):
            reasons += " An evaluation on the locked test series is queued on the training worker; try again when it is done."
        elif self.verdict.get("evaluation_not_queued"):
            reasons += " " + self.verdict["evaluation_not_queued"]
        return f"{reasons} To promote it anyway, give a written reason."

    def __str__(self) -> str:
        return self.message


def _lock_versions() -> ModelVersion | None:
    """Lock every version, so that two promotions cannot interleave; returns the active one."""
    versions = list(ModelVersion.objects.select_for_update().order_by("pk"))
    return next((v for v in versions if v.is_active), None)


def _clean_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise ValidationError({"reason": [f"The reason is {len(reason)} characters long; the limit is {MAX_REASON}."]})
    return reason


def _record(*, kind: str, previous: ModelVersion | None, model_version: ModelVersion, user: AbstractBaseUser,
            reason: str, verdict: dict[str, Any], gate_applies: bool) -> ModelPromotion:
    diagnosis_services.model_version_activate(model_version=model_version)
    passed = bool(verdict.get("passed")) if gate_applies else None
    promotion = ModelPromotion.objects.create(
        kind=kind, from_version=previous, to_version=model_version, performed_by=user, reason=reason,
        gate={k: v for k, v in verdict.items() if k != "already_active"}, gate_passed=passed,
        gate_overridden=gate_applies and not passed,
    )
    logger.info("%s by %s: %s -> %s%s", promotion.get_kind_display(), user.get_username(),
                previous.name if previous else "none", model_version.name,
                " (gate overridden: %s)" % reason if promotion.gate_overridden else "")
    return promotion


def model_version_promote(*, model_version: ModelVersion, user: AbstractBaseUser, reason: str = "") -> ModelPromotion | None:
    """Make the version active if the gate lets it through, or if a written reason overrides the gate.

    Returns the audit record, or None when the version is already active (nothing changes). Raises
    PromotionRefused with the verdict otherwise; when an evaluation is missing it is queued.
    """
    reason = _clean_reason(reason)
    with transaction.atomic():
        previous = _lock_versions()
        if previous is not None and previous.pk == model_version.pk:
            return None
        verdict = selectors.promotion_gate(candidate=model_version)
        if verdict["passed"] or reason:
            return _record(kind=ModelPromotion.Kind.PROMOTE, previous=previous, model_version=model_version,
                           user=user, reason=reason, verdict=verdict, gate_applies=True)
    # Outside the refused transaction, or the queued evaluations would be rolled back with it.
    needed = verdict.get("needs_evaluation") or []
    try:
        for version in ModelVersion.objects.filter(pk__in=needed):
            model_version_evaluation_request(model_version=version)
    except EvaluationNotQueued as exc:
        verdict["evaluation_queued"], verdict["evaluation_not_queued"] = False, str(exc)
    else:
        verdict["evaluation_queued"] = bool(needed)
    raise PromotionRefused(verdict)


def model_version_rollback(*, model_version: ModelVersion, user: AbstractBaseUser, reason: str = "") -> ModelPromotion | None:
    """Go back to a version that served before, without the gate (it is how one undoes a promotion)."""
    reason = _clean_reason(reason)
    with transaction.atomic():
        previous = _lock_versions()
        if previous is not None and previous.pk == model_version.pk:
            return None
        if not selectors.model_version_was_active(model_version=model_version):
            raise ValidationError(
                {"model_version": [f"{model_version.name} has never been active, so there is nothing to roll back "
                                   "to; promote it instead (the gate applies)."]}
            )
        verdict = selectors.promotion_gate(candidate=model_version)
        return _record(kind=ModelPromotion.Kind.ROLLBACK, previous=previous, model_version=model_version, user=user,
                       reason=reason, verdict=verdict, gate_applies=False)


def model_version_admin_activate(*, model_version: ModelVersion, user: AbstractBaseUser) -> ModelPromotion | None:
    """The Django admin's activate action: for the deployment's operators, without the gate, but audited."""
    with transaction.atomic():
        previous = _lock_versions()
        if previous is not None and previous.pk == model_version.pk:
            return None
        verdict = selectors.promotion_gate(candidate=model_version)
        return _record(kind=ModelPromotion.Kind.ADMIN_ACTIVATE, previous=previous, model_version=model_version,
                       user=user, reason="Activated from the Django admin; the promotion gate was not applied.",
                       verdict=verdict, gate_applies=False)
