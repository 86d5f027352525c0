"""Model versions: registering trained models and choosing the active one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import ml
from ..models import ModelVersion
from .performance import inputs_judge_soon

logger = logging.getLogger(__name__)


def model_version_activate(*, model_version: ModelVersion) -> ModelVersion:
    with transaction.atomic():
        # Lock every version so two activations cannot interleave; deactivate first to honour the
        # one-active constraint at every step.
        list(ModelVersion.objects.select_for_update().order_by("pk"))
        deactivated = ModelVersion.objects.filter(is_active=True).exclude(pk=model_version.pk).update(is_active=False)
        was_active = ModelVersion.objects.filter(pk=model_version.pk, is_active=True).exists()
        if not was_active:
            ModelVersion.objects.filter(pk=model_version.pk).update(is_active=True)
        model_version.is_active = True
    if deactivated or not was_active:
        logger.info("Model version %s is now active", model_version.name)
        # The replaced version's alerts of unusual uploads end now rather than at the next hourly judgement.
        inputs_judge_soon()
    return model_version


def model_version_register(*, path: Path | str, name: str | None = None, activate: bool = False) -> ModelVersion:
    """Register a .keras model (with its card) as a version. Registering the same file again returns its version,
    with the card read again when the card file changed."""
    resolved = ml.resolve_model_path(path)
    if not resolved.is_file():
        raise ValidationError({"path": [f"No model file at {resolved}."]})
    sha256 = ml.sha256_file(resolved)
    stored_path = ml.stored_model_path(resolved)
    if len(stored_path) > ModelVersion._meta.get_field("path").max_length:
        raise ValidationError({"path": [f"The path {stored_path} is too long to store; move the model to a shorter one."]})
    try:
        card: dict[str, Any] = ml.read_model_card(resolved)
    except Exception as exc:
        raise ValidationError({"path": [f"{resolved.name} cannot be registered: {exc}"]}) from None
    limit = ModelVersion._meta.get_field("name").max_length
    if name and len(name) > limit:
        raise ValidationError({"name": [f"The name is {len(name)} characters long; the limit is {limit}."]})
    class_names = list(card.get("classes") or [])
    if not class_names:
        raise ValidationError({"path": [f"The model card of {resolved.name} lists no classes."]})

    with transaction.atomic():
        existing = ModelVersion.objects.filter(sha256=sha256, path=stored_path)
        if name:
            existing = existing.filter(name=name)
        model_version = existing.order_by("pk").first()
        if model_version is None:
            base = name or str(card.get("name") or resolved.stem)[:limit]
            if ModelVersion.objects.filter(name=base).exists():
                if name:
                    raise ValidationError({"name": [f"A different model version is already named {name!r}."]})
                base = f"{base[:limit - 9]}-{sha256[:8]}"
            model_version = ModelVersion.objects.create(
                name=base,
                path=stored_path,
                sha256=sha256,
                class_names=class_names,
                metrics=card.get("metrics") or {},
                card=card,
            )
            logger.info("Registered model version %s (%s)", model_version.name, stored_path)
        elif model_version.card != card:
            # The same network, described anew (a measure added to its card since): pages read the card from here,
            # so it follows the file; the weights, and so every result, stay as they were.
            model_version.card, model_version.metrics = card, card.get("metrics") or {}
            model_version.save(update_fields=["card", "metrics"])
            logger.info("Model version %s: its card was read again from %s", model_version.name, stored_path)
        if activate:
            model_version_activate(model_version=model_version)
    return model_version
