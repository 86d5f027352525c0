"""The record system (HL7 v2 over MLLP) on the Members page: an administrator sets where results are sent, sees the
latest messages and their acknowledgements, and sends a failed one again; clinicians change nothing."""

import pytest
from django.urls import reverse

from diagnosis.models import Hl7Delivery, Organization, StaffChange

from .factories import ScanFactory

ADDRESS = "mllps://engine.example.org:6661"


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def _delivery(organization, **fields):
    scan = ScanFactory(patient__organization=organization)
    return Hl7Delivery.objects.create(organization=organization, scan=scan, event="diagnosis.finished",
                                      url=ADDRESS, **fields)


def test_an_administrator_sets_the_record_systems_address_and_routing(admin_client, organization):
    response = admin_client.post(reverse("diagnosis:staff_hl7"), {
        "hl7-address": ADDRESS, "hl7-receiving_application": "EPIC", "hl7-receiving_facility": "GENERAL"},
        follow=True)

    page = response.content.decode()
    assert "Each change of a scan&#x27;s result is now sent to the record system (HL7 v2)." in page
    assert f"Now sent to <code>{ADDRESS}</code>" in page
    organization.refresh_from_db()
    assert (organization.hl7_address, organization.hl7_receiving_application,
            organization.hl7_receiving_facility) == (ADDRESS, "EPIC", "GENERAL")
    assert StaffChange.objects.filter(detail__contains="record system at mllps://").exists()


def test_a_bad_or_unencrypted_address_is_explained_and_nothing_changes(admin_client, organization):
    bad = admin_client.post(reverse("diagnosis:staff_hl7"), {"hl7-address": "engine.example.org:6661"})
    plain = admin_client.post(reverse("diagnosis:staff_hl7"), {"hl7-address": "mllp://engine.example.org:6661"})

    assert bad.status_code == 400 and "as mllp://host:port (mllps:// over TLS)" in bad.content.decode()
    assert plain.status_code == 400 and "KIDNEYWEB_HL7_ALLOW_PLAIN=1" in plain.content.decode()
    assert Organization.objects.get(pk=organization.pk).hl7_address == ""
    assert not StaffChange.objects.exists()


def test_the_latest_messages_are_listed_and_a_failed_one_is_sent_again(admin_client, organization, boss,
                                                                        django_capture_on_commit_callbacks):
    Organization.objects.filter(pk=organization.pk).update(hl7_address=ADDRESS)
    acknowledged = _delivery(organization, status="delivered", attempts=1, ack_code="AA",
                             control_id="0123456789abcdef0123")
    failed = _delivery(organization, status="failed", attempts=1, ack_code="AR",
                       last_error="The record system rejected the message (AR): Unknown patient.")

    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert f"scan #{acknowledged.scan_id}</a>: diagnosis.finished" in page and "0123456789abcdef0123" in page
    assert "Acknowledged" in page and "rejected the message (AR): Unknown patient." in page

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(reverse("diagnosis:staff_hl7_send_again", args=[failed.pk]), follow=True)

    assert f"The result of scan #{failed.scan_id} is being sent to the record system again." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.sent_again_by) == ("pending", 0, boss) and len(callbacks) == 1


def test_another_organizations_message_is_404_and_a_clinician_cannot_set_the_address(
        client, clinician, admin_client, organization, other_organization):
    theirs = _delivery(other_organization, status="failed")

    assert admin_client.post(reverse("diagnosis:staff_hl7_send_again", args=[theirs.pk])).status_code == 404
    client.force_login(clinician)
    assert client.post(reverse("diagnosis:staff_hl7"), {"hl7-address": ADDRESS}).status_code == 403
    assert Organization.objects.get(pk=organization.pk).hl7_address == ""


def test_the_scan_page_and_its_live_status_say_how_the_newest_change_went_to_the_record_system(
        client, clinician, organization):
    client.force_login(clinician)
    failed = _delivery(organization, status="failed", ack_code="AR",
                       last_error="The record system rejected the message (AR): Unknown patient.")

    page = client.get(reverse("diagnosis:scan_detail", args=[failed.scan_id])).content.decode()
    state = client.get(reverse("diagnosis:scan_status", args=[failed.scan_id])).json()["record_system"]

    assert 'id="hl7-status"' in page and 'data-status="failed"' in page
    assert "did not take the newest change of this result:</strong> The record system rejected the message" in page
    assert "An administrator can send it again." in page
    assert state["status"] == "failed" and "Unknown patient." in state["html"]

    Hl7Delivery.objects.filter(pk=failed.pk).update(status="delivered", last_error="")
    assert "acknowledged the result as it stands" in client.get(
        reverse("diagnosis:scan_status", args=[failed.scan_id])).json()["record_system"]["html"]


def test_the_scan_page_waits_for_the_first_message_where_a_record_system_is_set_and_says_nothing_otherwise(
        client, clinician, organization):
    client.force_login(clinician)
    scan = ScanFactory(patient__organization=organization)

    quiet = client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    Organization.objects.filter(pk=organization.pk).update(hl7_address=ADDRESS)
    waiting = client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()

    assert 'id="hl7-status"' not in quiet
    assert '<p class="scan-caption" id="hl7-status" aria-live="polite" data-status="" hidden></p>' in waiting
    assert client.get(reverse("diagnosis:scan_status", args=[scan.pk])).json()["record_system"] is None


def test_earlier_results_are_sent_from_the_members_page_and_a_day_to_come_is_explained(admin_client, organization):
    import datetime

    from .factories import DonePredictionFactory

    Organization.objects.filter(pk=organization.pk).update(hl7_address=ADDRESS)
    DonePredictionFactory(scan=ScanFactory(patient__organization=organization))
    tomorrow = datetime.date.today() + datetime.timedelta(days=2)

    future = admin_client.post(reverse("diagnosis:staff_hl7_send_since"), {"hl7-since-since": tomorrow.isoformat()})
    sent = admin_client.post(reverse("diagnosis:staff_hl7_send_since"),
                             {"hl7-since-since": datetime.date.today().isoformat()}, follow=True)

    assert future.status_code == 400 and "Choose a day that has passed." in future.content.decode()
    assert "1 earlier result is being sent to the record system." in sent.content.decode()
    assert Hl7Delivery.objects.filter(event="earlier.result").count() == 1


def test_every_result_not_taken_is_sent_again_from_the_members_page(admin_client, organization):
    Organization.objects.filter(pk=organization.pk).update(hl7_address=ADDRESS)
    failed = _delivery(organization, status="failed", last_error="Not reached: Connection refused.")

    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    response = admin_client.post(reverse("diagnosis:staff_hl7_send_failed_again"), follow=True)

    assert "Send every result not taken again" in page
    assert "The result of 1 scan is being sent to the record system again." in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == "pending"
