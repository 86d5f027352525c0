"""Reviewing on the scan page: accept or correct, with a comment; errors on the form."""

import pytest
from django.urls import reverse

from diagnosis.models import Prediction, Review

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ScanFactory


@pytest.fixture
def scan(organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan, label="Stone", top=0.93)
    return scan


def test_the_scan_page_offers_every_class_with_the_ai_label_chosen(ui_client, scan):
    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()

    assert 'id="review-form"' in page and "Not reviewed yet" in page
    for name in ("Cyst", "Normal", "Tumor"):
        assert f'value="{name}"' in page
    assert '<input type="radio" name="label" value="Stone" id="id_label_2" required checked>' in page
    assert page.count("required checked>") == 1
    assert "Stone (AI)" in page


def test_a_correction_is_saved_and_shown_next_to_the_ai_result(ui_client, scan):
    response = ui_client.post(
        reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Tumor", "comment": "Irregular margin"}
    )

    assert response.status_code == 302
    review = Review.objects.get()
    assert (review.label, review.agrees_with_ai, review.comment, review.reviewed_by.username) == (
        "Tumor", False, "Irregular margin", "alice"
    )
    page = ui_client.get(response["Location"]).content.decode()
    assert "corrected the AI label Stone to <strong>Tumor</strong>" in page
    assert "Irregular margin" in page and "Reviewed: Tumor (corrected)" in page
    assert "Most likely:" in page  # the AI result stays on the page as it was


def test_accepting_the_ai_label_says_so(ui_client, scan):
    response = ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Stone"}, follow=True)

    assert "you confirmed the AI label Stone" in response.content.decode()
    assert Review.objects.get().agrees_with_ai


def test_an_invalid_label_is_a_form_error_and_nothing_is_saved(ui_client, scan):
    response = ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Banana"})

    assert response.status_code == 400
    assert "Select a valid choice. Banana is not one of the available choices." in response.content.decode()
    assert not Review.objects.exists()


def test_a_scan_still_being_diagnosed_cannot_be_reviewed(ui_client, organization):
    scan = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), status=Prediction.Status.QUEUED).scan

    response = ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Stone"})

    assert response.status_code == 400
    assert "can be reviewed once the diagnosis has finished" in response.content.decode()


def test_another_organizations_scan_cannot_be_reviewed(ui_client, other_organization):
    theirs = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=other_organization))).scan

    assert ui_client.post(reverse("diagnosis:scan_review", args=[theirs.pk]), {"label": "Stone"}).status_code == 404
    assert not Review.objects.exists()


def test_the_patient_page_lists_reviewed_and_unreviewed_scans_apart(ui_client, organization):
    patient = PatientFactory(organization=organization)
    waiting = ScanFactory(patient=patient, original_filename="waiting.png")
    DonePredictionFactory(scan=waiting)
    done = ScanFactory(patient=patient, original_filename="done.png")
    DonePredictionFactory(scan=done)
    ui_client.post(reverse("diagnosis:scan_review", args=[done.pk]), {"label": "Cyst"})

    page = ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    to_review, reviewed = page.split('id="reviewed-heading"')
    assert "waiting.png" in to_review and "done.png" not in to_review
    assert "done.png" in reviewed and "Reviewed: Cyst (corrected)" in reviewed


def test_a_confirmation_posted_after_a_newer_result_arrived_is_refused_and_offered_again(ui_client, scan):
    seen = scan.predictions.get()
    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    assert f'name="prediction_id" value="{seen.pk}"' in page
    newer = DonePredictionFactory(scan=scan, label="Tumor", top=0.9)

    response = ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]),
                              {"label": "Stone", "comment": "Calcification", "prediction_id": seen.pk})

    assert response.status_code == 400 and not Review.objects.exists()
    page = response.content.decode()
    assert "A newer AI result (Tumor" in page and "Calcification" in page
    assert f'name="prediction_id" value="{newer.pk}"' in page  # the next submission judges the result shown
    again = ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]),
                           {"label": "Tumor", "prediction_id": newer.pk})
    assert again.status_code == 302 and Review.objects.get().prediction == newer


def test_a_refused_review_shows_its_reason_while_a_rerun_is_pending(ui_client, scan):
    PredictionFactory(scan=scan, status=Prediction.Status.QUEUED)

    response = ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Stone", "comment": "Kept"})

    page = response.content.decode()
    assert response.status_code == 400
    review_section = page.split('id="review"', 1)[1].split(">", 1)[0]
    assert "hidden" not in review_section
    assert "can be reviewed once the diagnosis has finished" in page and "Kept" in page


def test_a_review_of_an_earlier_result_says_so_after_a_rerun(ui_client, scan):
    ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Stone"})
    DonePredictionFactory(scan=scan, label="Cyst")

    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()

    assert "confirmed the earlier AI label Stone" in page


def test_a_comment_at_the_browsers_limit_with_crlf_line_breaks_is_saved_with_plain_ones(ui_client, scan):
    lines = ["Hyperdense focus, lower pole."] * 150
    typed = "\n".join(lines)[:4000]  # what the browser counts against maxlength="4000"
    sent = typed.replace("\n", "\r\n")  # what it sends
    assert len(sent) > 4000

    response = ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Stone", "comment": sent})

    assert response.status_code == 302
    assert Review.objects.get().comment == typed.strip()


def test_a_scan_whose_diagnosis_failed_offers_the_review_and_records_the_clinicians_reading(ui_client, organization):
    failed = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)),
                               status=Prediction.Status.FAILED, failure_reason="The worker ran out of memory")
    url = reverse("diagnosis:scan_detail", args=[failed.scan.pk])
    page = ui_client.get(url).content.decode()
    assert "hidden" not in page.split('id="review"', 1)[1].split(">", 1)[0]
    assert "The AI gave no result: choose the class you read" in page

    response = ui_client.post(reverse("diagnosis:scan_review", args=[failed.scan.pk]),
                              {"label": "Tumor", "prediction_id": failed.pk}, follow=True)

    page = response.content.decode()
    assert "you read the slice as Tumor (no AI result)" in page
    assert "Reviewed: Tumor (no AI result)" in page and "without an AI result (the diagnosis failed)" in page
    assert Review.objects.get().agrees_with_ai is None
