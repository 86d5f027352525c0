import pytest
from django.core.exceptions import ValidationError

from diagnosis import services
from diagnosis.models import Prediction, Review

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ScanFactory


@pytest.fixture
def done_prediction(organization, clinician):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)
    return DonePredictionFactory(scan=scan, label="Stone")


def test_accepting_the_ai_label_records_agreement_and_keeps_the_ai_result(done_prediction, clinician):
    review = services.review_create(scan=done_prediction.scan, user=clinician, label="Stone", comment="  clear  ")

    assert review.agrees_with_ai is True
    assert review.prediction == done_prediction
    assert review.reviewed_by == clinician and review.reviewed_at is not None
    assert review.comment == "clear"
    done_prediction.refresh_from_db()
    assert done_prediction.label == "Stone"


def test_correcting_the_label_records_disagreement_and_leaves_the_prediction_alone(done_prediction, clinician):
    review = services.review_create(scan=done_prediction.scan, user=clinician, label="Tumor")

    assert review.agrees_with_ai is False
    done_prediction.refresh_from_db()
    assert (done_prediction.label, done_prediction.status) == ("Stone", Prediction.Status.DONE)
    assert done_prediction.scan.current_review == review


def test_the_newest_review_is_the_current_one(done_prediction, clinician):
    services.review_create(scan=done_prediction.scan, user=clinician, label="Tumor")
    second = services.review_create(scan=done_prediction.scan, user=clinician, label="Cyst", comment="second look")

    assert done_prediction.scan.current_review == second
    assert done_prediction.scan.reviews.count() == 2


def test_a_label_the_model_does_not_know_is_refused(done_prediction, clinician):
    with pytest.raises(ValidationError) as caught:
        services.review_create(scan=done_prediction.scan, user=clinician, label="Banana")

    assert "Cyst, Normal, Stone, Tumor" in caught.value.message_dict["label"][0]
    assert not Review.objects.exists()


@pytest.mark.parametrize("status", [Prediction.Status.QUEUED, Prediction.Status.RUNNING])
def test_a_scan_whose_diagnosis_is_pending_cannot_be_reviewed(organization, clinician, status):
    prediction = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), status=status)

    with pytest.raises(ValidationError, match="can be reviewed once the diagnosis has finished"):
        services.review_create(scan=prediction.scan, user=clinician, label="Stone")
    assert not Review.objects.exists()


def test_the_latest_prediction_is_the_one_reviewed_even_after_an_older_one_finished(done_prediction, clinician):
    PredictionFactory(scan=done_prediction.scan, status=Prediction.Status.QUEUED)

    with pytest.raises(ValidationError, match="queued"):
        services.review_create(scan=done_prediction.scan, user=clinician, label="Stone")


def test_a_scan_of_another_organization_cannot_be_reviewed(done_prediction, other_clinician):
    with pytest.raises(ValidationError, match="No such scan"):
        services.review_create(scan=done_prediction.scan, user=other_clinician, label="Stone")
    assert not Review.objects.exists()


def test_an_overlong_comment_is_refused(done_prediction, clinician):
    with pytest.raises(ValidationError) as caught:
        services.review_create(scan=done_prediction.scan, user=clinician, label="Stone", comment="x" * 5000)

    assert "limit" in caught.value.message_dict["comment"][0]


def test_a_review_of_a_result_that_a_newer_one_replaced_is_refused(done_prediction, clinician):
    newer = DonePredictionFactory(scan=done_prediction.scan, label="Tumor")

    with pytest.raises(ValidationError, match=r"A newer AI result \(Tumor"):
        services.review_create(scan=done_prediction.scan, user=clinician, label="Stone", prediction_id=done_prediction.pk)
    assert not Review.objects.exists()

    review = services.review_create(scan=done_prediction.scan, user=clinician, label="Tumor", prediction_id=newer.pk)
    assert review.prediction == newer and review.agrees_with_ai


def test_crlf_line_breaks_in_a_comment_count_as_one_character(done_prediction, clinician):
    comment = ("x" * 9 + "\r\n") * 400  # 4,000 characters with plain line breaks

    review = services.review_create(scan=done_prediction.scan, user=clinician, label="Stone", comment=comment)

    assert review.comment == ("x" * 9 + "\n") * 399 + "x" * 9


def test_a_scan_whose_diagnosis_failed_is_read_by_the_clinician_without_an_ai_verdict(organization, clinician):
    prediction = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)),
                                   status=Prediction.Status.FAILED, failure_reason="The worker ran out of memory")

    review = services.review_create(scan=prediction.scan, user=clinician, label="Tumor", prediction_id=prediction.pk)

    assert (review.prediction, review.label, review.agrees_with_ai) == (prediction, "Tumor", None)
    with pytest.raises(ValidationError, match="Unknown label 'Banana'"):
        services.review_create(scan=prediction.scan, user=clinician, label="Banana")


def test_a_review_of_a_result_replaced_by_a_failed_one_says_the_newer_one_failed(done_prediction, clinician):
    PredictionFactory(scan=done_prediction.scan, status=Prediction.Status.FAILED, failure_reason="Out of memory")

    with pytest.raises(ValidationError, match=r"A newer AI result \(failed, "):
        services.review_create(scan=done_prediction.scan, user=clinician, label="Stone", prediction_id=done_prediction.pk)
