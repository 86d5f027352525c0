"""The training tasks: their queue, and the on-demand evaluation on the locked test series."""

import dataclasses
import json

import pytest

from kidneyweb.celery import app
from mlcore.config import load_params
from training import selectors
from training.models import LockedTestEvaluation, LockedTestEvaluationFailure, LockedTestSet
from training.tasks import evaluate_model_version, fail_orphaned_runs, train_model


@pytest.mark.parametrize("task", [train_model, evaluate_model_version])
def test_training_tasks_go_to_the_training_queue(task):
    assert app.amqp.router.route({}, task.name)["queue"].name == "training"


def test_the_sweep_for_dead_runs_is_scheduled_by_beat_on_a_queue_no_run_blocks(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["fail-orphaned-training-runs"]
    assert entry["task"] == fail_orphaned_runs.name
    assert entry["schedule"] == settings.KIDNEYWEB_TRAINING_SWEEP_SECONDS
    assert app.amqp.router.route({}, fail_orphaned_runs.name)["queue"].name == "celery"


def test_diagnosis_stays_on_the_inference_queue():
    assert app.amqp.router.route({}, "diagnosis.tasks.predict_scan")["queue"].name == "inference"


def test_evaluating_a_version_scores_it_as_served_on_the_locked_test_series(training_settings, tiny_model_version):
    evaluate_model_version(tiny_model_version.pk)

    evaluation = LockedTestEvaluation.objects.get(model_version=tiny_model_version)
    test_set = LockedTestSet.objects.get()
    assert len(evaluation.probabilities) == len(test_set.records) == evaluation.scores["images"]
    assert all(abs(sum(row) - 1) < 1e-3 for row in evaluation.probabilities)
    assert evaluation.class_names == tiny_model_version.class_names

    evaluate_model_version(tiny_model_version.pk)  # once only
    assert LockedTestEvaluation.objects.count() == 1


def test_a_version_whose_file_changed_is_not_evaluated(training_settings, copy_model, db):
    from diagnosis import services as diagnosis_services

    path = copy_model("changed.keras")
    version = diagnosis_services.model_version_register(path=path)
    path.write_bytes(path.read_bytes() + b"tampered")

    evaluate_model_version(version.pk)

    assert not LockedTestEvaluation.objects.exists()
    reason = LockedTestEvaluationFailure.objects.get(model_version=version).reason
    assert reason.startswith(f"The model file of version {version.name!r} changed on disk")


def test_the_gate_says_why_an_evaluation_failed_until_one_succeeds(training_settings, tiny_model_version, copy_model):
    from diagnosis import services as diagnosis_services

    path = copy_model("gone.keras")
    candidate = diagnosis_services.model_version_register(path=path)
    path.unlink()
    evaluate_model_version(candidate.pk)
    evaluate_model_version(tiny_model_version.pk)

    verdict = selectors.promotion_gate(candidate=candidate)

    assert f"Its last evaluation failed: The model file of version {candidate.name!r} is missing" in " ".join(
        verdict["reasons"])
    assert verdict["evaluation_failures"] == {str(candidate.pk): LockedTestEvaluationFailure.objects.get().reason}

    copy_model("gone.keras")  # the file is back
    evaluate_model_version(candidate.pk)

    after = selectors.promotion_gate(candidate=candidate)
    assert not LockedTestEvaluationFailure.objects.exists() and after["evaluation_failures"] == {}
    assert "failed" not in " ".join(after["reasons"]) and after["needs_evaluation"] == []


def test_a_version_split_its_own_way_is_evaluated_with_the_locked_images_it_trained_on_named(
    training_settings, copy_model, db
):
    from diagnosis import services as diagnosis_services

    path = copy_model("older-split.keras")
    card = json.loads(path.with_suffix(".json").read_text())
    split = dataclasses.replace(load_params(training_settings.KIDNEYWEB_TRAINING_PARAMS).train.split, seed=7)
    card["training"] = {"params": {"train": {"split": dataclasses.asdict(split)}}}
    path.with_suffix(".json").write_text(json.dumps(card))
    version = diagnosis_services.model_version_register(path=path)

    evaluate_model_version(version.pk)

    evaluation = LockedTestEvaluation.objects.get(model_version=version)
    records = LockedTestSet.objects.get().records
    assert 0 < len(evaluation.seen) < len(records)
    # Its scores, shown beside other versions, leave out the slices it trained on.
    assert evaluation.scores["images"] == len(records) - len(evaluation.seen)
    assert len(evaluation.probabilities) == len(records)
