"""Promotion through the gate, overrides with a reason, rollback and the audit trail."""

import pytest
from django.core.exceptions import ValidationError

from diagnosis.models import ModelVersion
from diagnosis.tests.factories import ModelVersionFactory
from training import selectors, services
from training.models import ModelPromotion

from .factories import LockedTestEvaluationFactory, LockedTestSetFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_set():
    return LockedTestSetFactory()


@pytest.fixture
def active(test_set):
    version = ModelVersionFactory(is_active=True, name="active-v1")
    LockedTestEvaluationFactory(model_version=version, test_set=test_set)
    return version


def candidate_with(test_set, **recall) -> ModelVersion:
    version = ModelVersionFactory(name=f"candidate-{len(recall)}-{ModelVersion.objects.count()}")
    LockedTestEvaluationFactory(model_version=version, test_set=test_set, recall=recall)
    return version


def test_a_candidate_the_gate_lets_through_becomes_active_and_is_audited(test_set, active, admin_user):
    candidate = candidate_with(test_set)

    promotion = services.model_version_promote(model_version=candidate, user=admin_user)

    assert list(ModelVersion.objects.filter(is_active=True)) == [candidate]
    assert (promotion.kind, promotion.from_version, promotion.to_version) == ("promote", active, candidate)
    assert promotion.performed_by == admin_user and promotion.gate_passed and not promotion.gate_overridden
    assert promotion.gate["candidate"]["macro_f1"] == promotion.gate["baseline"]["macro_f1"] == 1.0


def test_a_worse_candidate_is_refused_with_the_verdict_and_nothing_changes(test_set, active, admin_user):
    candidate = candidate_with(test_set, Stone=0.6)

    with pytest.raises(services.PromotionRefused) as refused:
        services.model_version_promote(model_version=candidate, user=admin_user)

    assert "recall of Stone is 0.600 against 1.000" in str(refused.value)
    assert "give a written reason" in str(refused.value)
    assert refused.value.verdict["passed"] is False
    assert ModelVersion.objects.get(is_active=True) == active
    assert not ModelPromotion.objects.exists()


def test_a_written_reason_overrides_the_gate_and_is_recorded(test_set, active, admin_user):
    candidate = candidate_with(test_set, Stone=0.6)

    promotion = services.model_version_promote(model_version=candidate, user=admin_user,
                                               reason="  Stone labels of the test series are under review.  ")

    assert ModelVersion.objects.get(is_active=True) == candidate
    assert promotion.gate_passed is False and promotion.gate_overridden
    assert promotion.reason == "Stone labels of the test series are under review."


def test_an_unevaluated_candidate_is_refused_and_its_evaluation_is_queued(
    test_set, active, admin_user, training_queue, django_capture_on_commit_callbacks
):
    candidate = ModelVersionFactory()

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(services.PromotionRefused) as refused:
            services.model_version_promote(model_version=candidate, user=admin_user)

    assert "has not been evaluated" in str(refused.value) and "queued" in str(refused.value)
    assert refused.value.verdict["needs_evaluation"] == [candidate.pk]
    assert training_queue() == [{"task": "training.tasks.evaluate_model_version", "args": [candidate.pk], "kwargs": {}}]


def test_with_no_active_model_an_evaluated_candidate_is_promoted(test_set, admin_user):
    candidate = candidate_with(test_set, Stone=0.1)

    promotion = services.model_version_promote(model_version=candidate, user=admin_user)

    assert promotion.from_version is None and promotion.gate_passed


def test_promoting_the_active_version_changes_nothing(active, admin_user):
    assert services.model_version_promote(model_version=active, user=admin_user) is None
    assert not ModelPromotion.objects.exists()


def test_images_a_model_trained_on_are_left_out_of_the_comparison(test_set, active, admin_user):
    candidate = candidate_with(test_set, Stone=0.6)
    wrong_stones = [r["pixel"] for r in test_set.records if r["label"] == "Stone"][3:]
    TrainingRunFactory(model_version=candidate, training_image_hashes=wrong_stones)

    verdict = selectors.promotion_gate(candidate=candidate)

    assert verdict["passed"], verdict["reasons"]
    assert verdict["test_set"] == {"sha256": test_set.sha256, "images": 20, "compared": 18, "left_out": 2}


def test_images_the_active_model_trained_on_by_its_own_split_are_left_out_of_the_comparison(test_set, admin_user):
    # An older shipped model split the data its own way: it read the first two Cyst images of the
    # locked set as training images, and answers them right where it fails the rest of the class.
    older = ModelVersionFactory(is_active=True, name="shipped-v3")
    LockedTestEvaluationFactory(model_version=older, test_set=test_set, recall={"Cyst": 0.4}, seen=[0, 1])
    candidate = candidate_with(test_set, Cyst=0.0)

    verdict = selectors.promotion_gate(candidate=candidate)

    assert verdict["passed"], verdict["reasons"]
    assert verdict["test_set"]["compared"] == 18 and verdict["test_set"]["left_out"] == 2
    assert verdict["baseline"]["recall"]["Cyst"] == 0.0


def test_rollback_returns_to_an_earlier_version_without_the_gate(test_set, active, admin_user):
    candidate = candidate_with(test_set)
    services.model_version_promote(model_version=candidate, user=admin_user)
    # Without an evaluation the gate could not even judge it: a rollback does not ask.
    LockedTestEvaluationFactory._meta.model.objects.filter(model_version=active).delete()

    promotion = services.model_version_rollback(model_version=active, user=admin_user, reason="Back to v1")

    assert ModelVersion.objects.get(is_active=True) == active
    assert (promotion.kind, promotion.from_version, promotion.to_version) == ("rollback", candidate, active)
    assert promotion.gate_passed is None and not promotion.gate_overridden
    assert [p.kind for p in selectors.promotion_list()] == ["rollback", "promote"]


def test_rollback_to_a_version_that_never_served_is_refused(test_set, active, admin_user):
    never = candidate_with(test_set)

    with pytest.raises(ValidationError, match="never been active"):
        services.model_version_rollback(model_version=never, user=admin_user)
    assert ModelVersion.objects.get(is_active=True) == active


def test_the_margin_comes_from_the_settings(settings, test_set, active, admin_user):
    candidate = candidate_with(test_set, Stone=0.8)
    settings.KIDNEYWEB_PROMOTION_MARGIN = 0.25

    assert services.model_version_promote(model_version=candidate, user=admin_user).gate_passed


def test_before_any_locked_test_series_exists_promotion_queues_the_evaluations(
    admin_user, training_queue, django_capture_on_commit_callbacks
):
    active = ModelVersionFactory(is_active=True)
    candidate = ModelVersionFactory()

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(services.PromotionRefused, match="no locked test series yet"):
            services.model_version_promote(model_version=candidate, user=admin_user)

    assert ModelVersion.objects.get(is_active=True) == active
    sent = sorted(training_queue(), key=lambda message: message["args"])
    assert sent == [{"task": "training.tasks.evaluate_model_version", "args": [version.pk], "kwargs": {}}
                    for version in sorted([active, candidate], key=lambda version: version.pk)]
