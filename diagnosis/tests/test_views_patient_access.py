"""Opening a patient, a scan or a report on the web is logged; only administrators see the log."""

import datetime

from django.urls import reverse
from django.utils import timezone

from diagnosis.models import Membership, PatientAccess

from .factories import DonePredictionFactory, MembershipFactory, PatientFactory, ScanFactory


def test_opening_the_patient_a_scan_and_its_report_is_logged_and_shown_to_administrators(ui_client, clinician,
                                                                                         organization, client):
    patient = PatientFactory(organization=organization)
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    DonePredictionFactory(scan=scan)

    for name, pk in [("patient_detail", patient.pk), ("scan_detail", scan.pk), ("scan_report", scan.pk)]:
        assert ui_client.get(reverse(f"diagnosis:{name}", args=[pk])).status_code == 200

    logged = list(PatientAccess.objects.filter(patient=patient).order_by("id").values_list("what", "scan", "channel"))
    assert logged == [("patient", None, "web"), ("scan", scan.pk, "web"), ("report", scan.pk, "web")]

    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="privacy").user
    client.force_login(admin)
    page = client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert "Opened by" in page
    assert f"alice: PDF report of scan #{scan.pk} (Web)" in page
    assert "privacy: Patient record (Web)" in page  # the administrator's own opening counts too


def test_clinicians_do_not_see_who_opened_the_record(ui_client, organization):
    patient = PatientFactory(organization=organization)

    page = ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    assert "Opened by" not in page


def test_a_refused_opening_of_another_organizations_patient_is_not_logged_as_seen(ui_client, other_organization):
    patient = PatientFactory(organization=other_organization)

    assert ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 404
    assert not PatientAccess.objects.exists()


def test_the_patient_page_shows_the_latest_fifty_openings(client, organization, clinician):
    patient = PatientFactory(organization=organization)
    now = timezone.now()
    PatientAccess.objects.bulk_create([
        PatientAccess(patient=patient, user=clinician, what="patient", channel="api",
                      at=now - datetime.timedelta(days=1, minutes=i)) for i in range(60)
    ])
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="privacy").user
    client.force_login(admin)

    page = client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    assert "Opened by (50 latest, administrators only)" in page
    assert page.count("alice: Patient record (API)") == 49  # the admin's own opening is the newest of the 50
