"""Withdrawing a scan on its page: the uploader or an administrator gives a reason; the page then says
it was withdrawn, by whom and why, and offers no review or new diagnosis."""

from django.urls import reverse

from diagnosis.models import Scan

from .factories import DonePredictionFactory, PatientFactory, ScanFactory


def _scan(organization, uploader):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=uploader)
    DonePredictionFactory(scan=scan)
    return scan


def test_the_uploader_withdraws_a_scan_with_a_reason_and_the_page_says_so(ui_client, clinician, organization):
    scan = _scan(organization, clinician)
    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    assert "Withdraw this scan (entered in error)" in page and 'id="review-form"' in page

    response = ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]), {"reason": "wrong patient"}, follow=True)

    page = response.content.decode()
    assert "The scan is withdrawn." in page
    assert "This scan was withdrawn as entered in error by alice on" in page and ": wrong patient" in page
    assert "Not reviewed: a withdrawn scan takes no review." in page
    assert 'id="review-form"' not in page and "Diagnose again" not in page and "Withdraw this scan" not in page
    patient_page = ui_client.get(reverse("diagnosis:patient_detail", args=[scan.patient_id])).content.decode()
    assert "Withdrawn, entered in error <span class=\"count\">(1)</span>" in patient_page
    assert "To review <span class=\"count\" id=\"unreviewed-count\">(0)</span>" in patient_page


def test_without_a_reason_the_form_says_what_is_missing(ui_client, clinician, organization):
    scan = _scan(organization, clinician)

    response = ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]), {"reason": ""})

    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn


def test_another_clinician_is_not_offered_the_form_and_is_refused(ui_client, nurse, organization):
    scan = _scan(organization, nurse)

    assert "Withdraw this scan" not in ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    response = ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]), {"reason": "x"}, follow=True)

    assert "Only the clinician who uploaded this scan or an administrator can withdraw it." in response.content.decode()
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn


def test_the_pdf_report_of_a_withdrawn_scan_says_so(ui_client, clinician, organization):
    import io

    from pypdf import PdfReader

    scan = _scan(organization, clinician)
    ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]), {"reason": "wrong patient"})

    pdf = ui_client.get(reverse("diagnosis:scan_report", args=[scan.pk])).content
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "WITHDRAWN, ENTERED IN ERROR" in text and "wrong patient" in text and "Not for clinical use" in text
