"""The archive (PACS) on the Members page: an administrator sets where AI results are stored and as whom, sees the
latest results sent and sends failed ones again; the scan page says how its result went; clinicians change nothing."""

import pytest
from django.urls import reverse
from django.utils import timezone

from diagnosis import services
from diagnosis.models import Organization, PacsDelivery, StaffChange

from .factories import PacsDeliveryFactory, ReviewFactory

URL = "https://pacs.example.org/dicom-web"


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def _delivery(organization, **fields):
    return PacsDeliveryFactory(prediction__scan__patient__organization=organization, **fields)


def test_an_administrator_sets_the_archive_and_its_password_is_never_shown_again(admin_client, organization):
    response = admin_client.post(reverse("diagnosis:staff_pacs"), {
        "pacs-url": URL, "pacs-username": "kidneyweb-ai", "pacs-password": "archive-s3cret"}, follow=True)

    page = response.content.decode()
    assert "Each finished AI result of a DICOM slice is now sent to the archive." in page
    assert f"Now sent to <code>{URL}</code>" in page and '<span id="pacs-user">kidneyweb-ai</span>' in page
    assert "archive-s3cret" not in page
    organization.refresh_from_db()
    assert (organization.pacs_url, organization.pacs_username, organization.pacs_password) == (
        URL, "kidneyweb-ai", "archive-s3cret")


def test_a_bad_address_or_a_missing_password_is_explained_and_nothing_changes(admin_client, organization):
    bad = admin_client.post(reverse("diagnosis:staff_pacs"), {"pacs-url": "ftp://pacs.example.org/x"})
    no_password = admin_client.post(reverse("diagnosis:staff_pacs"), {"pacs-url": URL, "pacs-username": "ai"})

    assert bad.status_code == 400 and "Enter the archive&#x27;s DICOMweb address, starting with https://" in bad.content.decode()
    assert no_password.status_code == 400 and "Enter the password of this user on the archive." in no_password.content.decode()
    assert Organization.objects.get(pk=organization.pk).pacs_url == ""
    assert not StaffChange.objects.exists()


def test_the_latest_results_sent_are_listed_and_a_failed_one_is_sent_again(admin_client, organization, boss):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=URL)
    stored = _delivery(organization, status="delivered", attempts=1, response_status=200)
    failed = _delivery(organization, status="failed", attempts=1, response_status=401,
                       last_error="The archive answered 401 Unauthorized. Check the user name and password set for the archive.")

    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert f"scan #{stored.scan_id}" in page and stored.sop_instance_uid in page and "Stored" in page
    assert "Check the user name and password" in page and "Send every result not stored again" in page

    response = admin_client.post(reverse("diagnosis:staff_pacs_send_again", args=[failed.pk]), follow=True)

    assert f"The result of scan #{failed.scan_id} is being sent to the archive again." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.sent_again_by) == (PacsDelivery.Status.PENDING, 0, boss)


def test_every_failed_result_is_sent_again_at_once(admin_client, organization):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=URL)
    failed = [_delivery(organization, status="failed", last_error="Gave up after 6 attempts.") for _ in range(2)]

    response = admin_client.post(reverse("diagnosis:staff_pacs_send_failed_again"), follow=True)

    assert "2 results are being sent to the archive again." in response.content.decode()
    assert {d.status for d in PacsDelivery.objects.filter(pk__in=[d.pk for d in failed])} == {"pending"}


def test_another_organizations_result_cannot_be_sent_again(admin_client, other_organization):
    theirs = _delivery(other_organization, status="failed")

    assert admin_client.post(reverse("diagnosis:staff_pacs_send_again", args=[theirs.pk])).status_code == 404


def test_a_clinician_cannot_set_the_archive(client, clinician, organization):
    client.force_login(clinician)

    response = client.post(reverse("diagnosis:staff_pacs"), {"pacs-url": URL})

    assert response.status_code == 403
    assert Organization.objects.get(pk=organization.pk).pacs_url == ""


def test_structured_reports_are_asked_for_with_a_checkbox_that_shows_the_setting(admin_client, organization):
    admin_client.post(reverse("diagnosis:staff_pacs"), {"pacs-url": URL, "pacs-send_reports": "on"})
    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()

    assert Organization.objects.get(pk=organization.pk).pacs_send_reports
    assert 'id="id_pacs-send_reports" checked' in page and "each also as a structured report (DICOM SR)." in page
    admin_client.post(reverse("diagnosis:staff_pacs"), {"pacs-url": URL})  # unticked
    assert not Organization.objects.get(pk=organization.pk).pacs_send_reports


def test_the_scan_page_says_how_its_structured_report_went_too(client, clinician, organization):
    client.force_login(clinician)
    capture = _delivery(organization, status="delivered", delivered_at=timezone.now())
    PacsDeliveryFactory(prediction=capture.prediction, kind=PacsDelivery.Kind.REPORT, status="failed",
                        last_error="The archive refused the instance: failure reason 0x0122.")

    page = client.get(reverse("diagnosis:scan_detail", args=[capture.scan_id])).content.decode()
    state = client.get(reverse("diagnosis:scan_status", args=[capture.scan_id])).json()["archive"]

    assert "The AI result is stored in the archive" in page
    assert "Its structured report (SR) is not stored:</strong> The archive refused" in page
    assert state["status"] == "delivered" and "Its structured report (SR) is not stored" in state["html"]
    PacsDelivery.objects.filter(kind=PacsDelivery.Kind.REPORT).update(status="pending", last_error="")
    # Still on its way: the page keeps asking.
    assert client.get(reverse("diagnosis:scan_status", args=[capture.scan_id])).json()["archive"]["status"] == "pending"
    assert 'data-status="pending"' in client.get(reverse("diagnosis:scan_detail", args=[capture.scan_id])).content.decode()


def test_the_scan_page_says_how_its_result_went_to_the_archive(client, clinician, organization):
    client.force_login(clinician)
    failed = _delivery(organization, status="failed", last_error="The archive refused the instance: failure reason 0xa900.")

    page = client.get(reverse("diagnosis:scan_detail", args=[failed.scan_id])).content.decode()

    assert "The AI result is not stored in the archive (PACS):" in page and "failure reason 0xa900" in page
    assert "An\n      administrator can send it again." in page


def test_a_withdrawn_scan_names_the_results_the_archive_still_holds(client, boss, organization):
    client.force_login(boss)
    stored = _delivery(organization, status="delivered")
    services.scan_withdraw(scan=stored.scan, user=boss, reason="Wrong patient.")

    page = client.get(reverse("diagnosis:scan_detail", args=[stored.scan_id])).content.decode()

    assert "The archive (PACS) still holds 1 AI\n      result of this withdrawn scan:" in page
    assert f'<code class="uid">{stored.sop_instance_uid}</code>' in page


def test_a_stored_review_is_named_on_the_scan_page_and_in_the_list(admin_client, organization, boss):
    first = _delivery(organization, status="delivered")
    review = ReviewFactory(scan=first.scan, prediction=first.prediction, reviewed_by=boss)
    reviewed = PacsDelivery.objects.create(organization=organization, scan=first.scan, prediction=first.prediction,
                                           review=review, url=URL, sop_instance_uid="2.25.99", status="delivered",
                                           delivered_at=timezone.now())

    page = admin_client.get(reverse("diagnosis:scan_detail", args=[first.scan_id])).content.decode()
    listed = admin_client.get(reverse("diagnosis:staff_list")).content.decode()

    assert "The AI result with its review is stored in the archive\n      (PACS) beside the study" in page
    assert f"scan #{reviewed.scan_id}</a> (reviewed)" in listed


def test_checking_the_connection_shows_what_the_archive_answered(admin_client, organization):
    Organization.objects.filter(pk=organization.pk).update(pacs_url="https://127.0.0.1:9/dicom-web")

    page = admin_client.post(reverse("diagnosis:staff_pacs_check"), follow=True).content.decode()

    assert "The archive could not be used: Not reached:" in page


def test_earlier_results_are_sent_from_the_members_page_and_a_missing_day_is_explained(admin_client, organization):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=URL)

    missing = admin_client.post(reverse("diagnosis:staff_pacs_send_since"), {})
    sent = admin_client.post(reverse("diagnosis:staff_pacs_send_since"), {"pacs-since-since": "2026-01-01"}, follow=True)

    assert missing.status_code == 400 and "This field is required." in missing.content.decode()
    assert "0 earlier results are being sent to the archive." in sent.content.decode()


def _withdrawn_with_note(organization, boss, **note):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=URL)
    stored = _delivery(organization, status="delivered", attempts=1, delivered_at=timezone.now())
    services.scan_withdraw(scan=stored.scan, user=boss, reason="Wrong patient.")
    rejection = PacsDelivery.objects.get(scan=stored.scan, kind=PacsDelivery.Kind.REJECTION)
    PacsDelivery.objects.filter(pk=rejection.pk).update(**note)
    return stored, rejection


def test_a_withdrawn_scans_page_says_whether_the_archive_took_the_rejection_note_of_its_results(
        client, boss, clinician, organization):
    stored, rejection = _withdrawn_with_note(organization, boss)
    client.force_login(boss)
    url = reverse("diagnosis:scan_detail", args=[stored.scan_id])

    pending = client.get(url).content.decode()
    PacsDelivery.objects.filter(pk=rejection.pk).update(status="delivered", delivered_at=timezone.now())
    delivered = client.get(url).content.decode()
    live = client.get(reverse("diagnosis:scan_status", args=[stored.scan_id])).json()
    PacsDelivery.objects.filter(pk=rejection.pk).update(status="failed", last_error="The archive answered 503.")
    failed = client.get(url).content.decode()
    client.force_login(clinician)
    failed_for_a_clinician = client.get(url).content.decode()

    assert "A rejection note for the 1 AI\n      result the archive (PACS) was sent of this withdrawn scan is being sent" in pending
    assert "holds a rejection note for the 1 AI result it was sent of this withdrawn scan" in delivered
    assert "Rejected for Patient Safety Reasons" in delivered and "pacs-withdrawn" not in delivered
    assert 'id="pacs-rejection" role="note" aria-live="polite" data-status="pending">' in pending
    assert live["archive"] is None and live["archive_rejection"]["status"] == "delivered"
    assert live["archive_rejection"]["html"] in delivered  # the page's own sentence
    assert "did not take the rejection note" in failed and "The archive answered 503." in failed
    assert f'<code class="uid">{stored.sop_instance_uid}</code>' in failed  # to reject by hand meanwhile
    assert 'href="/staff/#pacs">Send it again</a>' in failed
    assert "An administrator can send it again." in failed_for_a_clinician


def test_a_rejection_note_is_listed_and_sent_again_from_the_members_page(admin_client, organization, boss):
    stored, rejection = _withdrawn_with_note(organization, boss, status="failed", attempts=6,
                                             last_error="Gave up after 6 attempts.")

    listed = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    admin_client.post(reverse("diagnosis:staff_pacs_send_again", args=[rejection.pk]))

    assert f"scan #{stored.scan_id}</a>: rejection note of 1 result (withdrawn)" in listed
    assert f'aria-label="Send the rejection note of scan #{stored.scan_id} to the archive again"' in listed
    rejection.refresh_from_db()
    assert (rejection.status, rejection.attempts, rejection.sent_again_by) == (PacsDelivery.Status.PENDING, 0, boss)


def test_the_scan_status_says_how_the_result_went_to_the_archive_in_the_pages_own_words(client, boss, clinician,
                                                                                         organization):
    delivery = _delivery(organization, status="pending")
    status_url = reverse("diagnosis:scan_status", args=[delivery.scan_id])
    client.force_login(boss)

    pending = client.get(status_url).json()["archive"]
    page = client.get(reverse("diagnosis:scan_detail", args=[delivery.scan_id])).content.decode()
    PacsDelivery.objects.filter(pk=delivery.pk).update(status="failed", last_error="The archive answered 503.")
    failed = client.get(status_url).json()["archive"]
    client.force_login(clinician)
    failed_for_a_clinician = client.get(status_url).json()["archive"]

    assert pending["status"] == "pending" and pending["html"].startswith("The AI result\n      is being sent")
    assert 'id="pacs-status" aria-live="polite" data-status="pending">' in page and pending["html"] in page
    assert failed["status"] == "failed" and "The archive answered 503." in failed["html"]
    assert 'href="/staff/#pacs">Send it again</a>' in failed["html"]
    assert "An\n      administrator can send it again." in failed_for_a_clinician["html"]
    png = PacsDeliveryFactory(prediction__scan__patient__organization=organization, prediction__scan__dicom_study_uid="")
    assert client.get(reverse("diagnosis:scan_status", args=[png.scan_id])).json()["archive"] is None


def test_a_note_replacing_captures_after_a_correction_is_listed_as_such(admin_client, organization, boss):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=URL)
    stored = _delivery(organization, status="delivered", attempts=1, filed_as=["Old Name", "M1", "19700101", "F"])

    services.patient_update(patient=stored.scan.patient, changed_by=boss, name="New Name")

    listed = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert f"scan #{stored.scan_id}</a>: rejection note of 1 result (replaced: the patient's details changed)" in listed


def test_an_archive_reached_by_dicoms_own_protocol_is_shown_with_the_ae_title_it_must_know(
        admin_client, organization, settings):
    settings.KIDNEYWEB_PACS_ALLOW_HTTP = True
    settings.KIDNEYWEB_DICOM_AE_TITLE = "KIDNEYWEB_AI"

    page = admin_client.post(reverse("diagnosis:staff_pacs"), {"pacs-url": "dicom://PACS@pacs.internal:104"},
                             follow=True).content.decode()

    assert "Now sent to <code>dicom://PACS@pacs.internal:104</code>" in page
    assert 'as AE title <code id="pacs-ae-title">KIDNEYWEB_AI</code>, which the archive must know' in page


def test_a_rejection_note_sent_again_is_named_as_such(admin_client, organization, boss):
    stored, rejection = _withdrawn_with_note(organization, boss, status="failed", attempts=6,
                                             last_error="Gave up after 6 attempts.")

    page = admin_client.post(reverse("diagnosis:staff_pacs_send_again", args=[rejection.pk]), follow=True)

    assert (f"The rejection note of scan #{stored.scan_id} is being sent to the archive again."
            in page.content.decode())


def test_an_administrator_uploads_a_client_certificate_and_sees_whose_it_is_and_until_when(admin_client, organization):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from . import certificates

    ours = certificates.client("kidneyweb.st-elsewhere.org", by=certificates.issue("St. Elsewhere CA", ca=True))
    url = reverse("diagnosis:staff_pacs_certificate")

    wrong = admin_client.post(url, {"pacs-tls-certificate": SimpleUploadedFile("kidneyweb.pem", ours.pem.encode()),
                                    "pacs-tls-key": SimpleUploadedFile("other.key", b"\x30\x82 binary DER")})
    assert wrong.status_code == 400 and "This is not a PEM file (text)" in wrong.content.decode()

    page = admin_client.post(url, {"pacs-tls-certificate": SimpleUploadedFile("kidneyweb.pem", ours.pem.encode()),
                                   "pacs-tls-key": SimpleUploadedFile("kidneyweb.key", ours.key_pem().encode())},
                             follow=True).content.decode()

    assert "kidneyweb now presents this client certificate to the archive over TLS." in page
    assert "<strong>kidneyweb.st-elsewhere.org</strong>, issued by St. Elsewhere CA" in page
    assert f"valid until {ours.certificate.not_valid_after_utc:%Y-%m-%d}" in page
    assert "upload its successor before then" in page  # it expires within 30 days
    assert "PRIVATE KEY" not in page

    page = admin_client.post(url, {"remove": "1"}, follow=True).content.decode()
    assert "kidneyweb no longer presents a client certificate to the archive." in page
    organization.refresh_from_db()
    assert organization.pacs_client_certificate == "" and organization.pacs_client_key == ""


def test_clinicians_cannot_upload_a_client_certificate(client, clinician, organization):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from . import certificates

    ours = certificates.client("kidneyweb", by=certificates.issue("St. Elsewhere CA", ca=True))
    client.force_login(clinician)

    response = client.post(reverse("diagnosis:staff_pacs_certificate"), {
        "pacs-tls-certificate": SimpleUploadedFile("kidneyweb.pem", ours.pem.encode()),
        "pacs-tls-key": SimpleUploadedFile("kidneyweb.key", ours.key_pem().encode())})

    assert response.status_code == 403  # a valid upload: only the role stops it
    organization.refresh_from_db()
    assert organization.pacs_client_certificate == ""


def test_an_administrator_sets_oauth_on_the_members_page_and_its_secret_is_never_shown(admin_client, organization):
    admin_client.post(reverse("diagnosis:staff_pacs"), {"pacs-url": URL})
    url = reverse("diagnosis:staff_pacs_oauth")

    wrong = admin_client.post(url, {"pacs-oauth-token_url": "http://sso.example.org/token",
                                    "pacs-oauth-client_id": "kidneyweb", "pacs-oauth-client_secret": "s"})
    assert wrong.status_code == 400 and "token address, starting with https://" in wrong.content.decode()

    page = admin_client.post(url, {"pacs-oauth-token_url": "https://sso.example.org/token",
                                   "pacs-oauth-client_id": "kidneyweb", "pacs-oauth-client_secret": "kc-secret-9",
                                   "pacs-oauth-scope": "dicom"}, follow=True).content.decode()

    assert "kidneyweb now authenticates to the archive with OAuth 2.0 bearer tokens." in page
    assert 'with OAuth 2.0 bearer tokens for client <span id="pacs-oauth-client">kidneyweb</span>' in page
    assert "kc-secret-9" not in page
    organization.refresh_from_db()
    assert (organization.pacs_client_id, organization.pacs_client_secret) == ("kidneyweb", "kc-secret-9")

    page = admin_client.post(url, {"pacs-oauth-token_url": ""}, follow=True).content.decode()
    assert "kidneyweb no longer uses OAuth 2.0 with the archive." in page


def test_an_erased_records_note_is_listed_without_the_record_and_sent_again_from_the_members_page(
        admin_client, organization, boss):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=URL)
    stored = _delivery(organization, status="delivered", attempts=1, delivered_at=timezone.now())
    patient = stored.scan.patient
    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=patient.mrn)
    note = PacsDelivery.objects.get(erasure=erasure)
    PacsDelivery.objects.filter(pk=note.pk).update(status="failed", attempts=6, last_error="Gave up after 6 attempts.")

    listed = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    again = admin_client.post(reverse("diagnosis:staff_pacs_send_again", args=[note.pk]), follow=True).content.decode()

    assert "an erased record: rejection note of 1 result (erased: the archive is asked to delete it)" in listed
    assert 'aria-label="Send the rejection note of an erased record to the archive again"' in listed
    erasures = listed[listed.index('id="erasures"'):listed.index('id="changes-heading"')]
    assert "<strong>not stored</strong> (1 of 1 note): send again above" in erasures
    assert patient.name not in listed and patient.mrn not in listed
    assert f"The rejection note of erased record (erasure #{erasure.pk}) is being sent to the archive again." in again
    PacsDelivery.objects.filter(pk=note.pk).update(status="delivered")
    stored_page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert "asked to delete 1 result: stored" in stored_page
