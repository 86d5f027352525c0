"""The locked test series and every model's evaluation on it (run on the training worker)."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from diagnosis import ml as diagnosis_ml
from diagnosis.models import ModelVersion

from .. import ml
from ..gate import side_scores
from ..models import LockedTestEvaluation, LockedTestEvaluationFailure, LockedTestSet
from ..params import base_params

logger = logging.getLogger(__name__)


class DeveloperDataMissing(FileNotFoundError):
    """The developer data set, which defines the locked test series, is not where the settings say."""


def locked_test_set_current(*, data_dir: Path | None = None) -> LockedTestSet:
    """The locked test series of the developer data set as it is now, made (once) if needed.

    The split parameters are params.yaml's: runs cannot change them, so every run and every model is
    compared on the same series as long as the data set does not change.
    """
    data_dir = Path(data_dir or ml.developer_data_dir())
    if not data_dir.is_dir():
        raise DeveloperDataMissing(
            f"The developer data set is not at {data_dir}; set KIDNEY_DATA_DIR (or data_dir in config.yaml)."
        )
    split = base_params().train.split
    fingerprint = ml.data_fingerprint(data_dir, split)
    known = LockedTestSet.objects.filter(fingerprint=fingerprint, data_dir=str(data_dir)).first()
    if known is not None:
        return known
    started = time.monotonic()
    records = ml.locked_test_records(data_dir, split)
    sha256 = ml.records_sha256(records)
    counts: dict[str, int] = {}
    for record in records:
        counts[record["label"]] = counts.get(record["label"], 0) + 1
    with transaction.atomic():
        test_set, created = LockedTestSet.objects.get_or_create(
            sha256=sha256,
            defaults={"fingerprint": fingerprint, "data_dir": str(data_dir), "split": dataclasses.asdict(split),
                      "records": records, "images_per_class": counts},
        )
        if not created and (test_set.fingerprint != fingerprint or test_set.data_dir != str(data_dir)):
            # The same series from a touched or moved folder: remember where they are now.
            test_set.fingerprint, test_set.data_dir = fingerprint, str(data_dir)
            test_set.save(update_fields=["fingerprint", "data_dir"])
    logger.info("Locked test set %s: %d images %s (%.0f s)", sha256[:12], len(records), counts,
                time.monotonic() - started)
    return test_set


def locked_test_evaluation_save(
    *, model_version: ModelVersion, test_set: LockedTestSet, class_names: list[str],
    probabilities: list[list[float]], seconds: float, seen: list[int] | None = None,
) -> LockedTestEvaluation:
    labels = [record["label"] for record in test_set.records]
    # Scores shown beside other versions must not count the slices this model trained on.
    left_out = set(seen or [])
    scores = side_scores(labels=labels, class_names=class_names, probabilities=probabilities,
                         include=[i for i in range(len(labels)) if i not in left_out])
    LockedTestEvaluationFailure.objects.filter(model_version=model_version).delete()
    try:
        with transaction.atomic():
            return LockedTestEvaluation.objects.create(
                model_version=model_version, test_set=test_set, class_names=list(class_names),
                probabilities=probabilities, scores=scores, seen=list(seen or []), seconds=round(seconds, 1),
            )
    except IntegrityError:
        # Another worker evaluated it meanwhile; the model and the images are the same, so is the result.
        return LockedTestEvaluation.objects.get(model_version=model_version, test_set=test_set)


def model_version_evaluate(*, model_version: ModelVersion, test_set: LockedTestSet | None = None) -> LockedTestEvaluation:
    """The version's calibrated probabilities on every locked test image, computed once and kept.

    Runs the model through the same per-process cache and Classifier as a diagnosis does, so the
    figures are those of the model as served (and a file changed since registration is refused).
    """
    test_set = test_set or locked_test_set_current()
    existing = LockedTestEvaluation.objects.filter(model_version=model_version, test_set=test_set).first()
    if existing is not None:
        return existing
    started = time.monotonic()
    classifier = diagnosis_ml.get_classifier(model_version)
    probabilities = ml.classify_records(classifier, Path(test_set.data_dir), test_set.records)
    seen = ml.records_seen_by_card(card=model_version.card, data_dir=Path(test_set.data_dir),
                                   split=test_set.split, records=test_set.records)
    evaluation = locked_test_evaluation_save(
        model_version=model_version, test_set=test_set, class_names=list(classifier.class_names),
        probabilities=probabilities, seconds=time.monotonic() - started, seen=seen,
    )
    logger.info("Evaluated %s on the locked test set: macro-F1 %.4f", model_version.name,
                evaluation.scores["macro_f1"])
    return evaluation


MAX_FAILURE_REASON = 2000


def model_version_evaluation_fail(*, model_version: ModelVersion, error: Exception) -> LockedTestEvaluationFailure:
    """Record why the version could not be evaluated; the newest reason replaces an older one."""
    # A missing or changed model file and a missing data set explain themselves; anything else is named.
    readable = isinstance(error, (diagnosis_ml.ModelFileError, OSError))
    reason = str(error) if readable else f"{error.__class__.__name__}: {error}"
    failure, _ = LockedTestEvaluationFailure.objects.update_or_create(
        model_version=model_version, defaults={"reason": reason[:MAX_FAILURE_REASON], "failed_at": timezone.now()},
    )
    logger.warning("Evaluation of %s on the locked test series failed: %s", model_version.name, reason)
    return failure


class EvaluationNotQueued(Exception):
    """The task broker did not take the evaluation; the message says so in words people can act on."""


def model_version_evaluation_request(*, model_version: ModelVersion) -> None:
    """Queue the version's evaluation on the training worker (it may wait behind a training run).

    Raises EvaluationNotQueued when the broker does not answer: there is no row to mark failed, so the
    caller must tell the person who asked (outside a transaction it is raised here, inside one at commit).
    """
    from ..tasks import evaluate_model_version

    def send() -> None:
        try:
            evaluate_model_version.apply_async(args=[model_version.pk])
        except Exception as exc:
            logger.exception("Could not queue the evaluation of %s", model_version.name)
            raise EvaluationNotQueued(
                f"The evaluation of {model_version.name} could not be queued (the task broker did not answer: "
                f"{exc.__class__.__name__}). Try again when the service is back."
            ) from exc

    transaction.on_commit(send)
