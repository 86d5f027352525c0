"""When a result must be marked "needs review" instead of being shown as a diagnosis."""

import pytest

from diagnosis import selectors
from diagnosis.models import Prediction

from .factories import DonePredictionFactory, ModelVersionFactory, PatientFactory, PredictionFactory, ScanFactory


@pytest.fixture
def version(db):
    return ModelVersionFactory(card={"calibration": {"confidence_threshold": 0.8}})


def test_a_confident_in_scope_result_is_a_plain_result(version):
    verdict = selectors.prediction_uncertainty(DonePredictionFactory(model_version=version, top=0.85))

    assert (verdict.needs_review, verdict.reason, verdict.threshold) == (False, "", 0.8)


def test_a_result_below_the_cards_threshold_needs_review_and_says_why(version):
    verdict = selectors.prediction_uncertainty(DonePredictionFactory(model_version=version, top=0.62))

    assert verdict.needs_review
    assert verdict.reason == "Uncertain: the top probability (62%) is below the confidence threshold (80%)."


def test_an_out_of_scope_result_needs_review_however_confident(version):
    prediction = DonePredictionFactory(model_version=version, top=0.99, out_of_scope=True, out_of_scope_reason="a colour image, not a CT slice")

    verdict = selectors.prediction_uncertainty(prediction)

    assert verdict.needs_review and "a colour image, not a CT slice" in verdict.reason


def test_a_failed_diagnosis_needs_review_and_a_pending_one_does_not_yet(version):
    assert selectors.prediction_uncertainty(PredictionFactory(model_version=version, status=Prediction.Status.FAILED)).needs_review
    assert not selectors.prediction_uncertainty(PredictionFactory(model_version=version)).needs_review


def test_the_setting_is_the_fallback_threshold(db, settings):
    settings.KIDNEYWEB_CONFIDENCE_THRESHOLD = 0.5

    assert selectors.confidence_threshold(ModelVersionFactory(card={"calibration": {}})) == 0.5
    assert selectors.confidence_threshold(ModelVersionFactory(card={"calibration": {"confidence_threshold": 0.9}})) == 0.9


@pytest.mark.parametrize("top", [0.5, 0.79, 0.8, 0.95])
def test_the_python_and_the_database_verdicts_agree(version, clinician, organization, top):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    prediction = DonePredictionFactory(scan=scan, model_version=version, top=top)

    assert selectors.worklist(user=clinician).get().needs_review == selectors.prediction_uncertainty(prediction).needs_review
