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


def _heatmap(scan):
    import io

    from django.core.files.base import ContentFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (255, 0, 0, 90)).save(buffer, format="PNG")
    prediction = DonePredictionFactory(scan=scan, label="Stone")
    prediction.heatmap.save("h.png", ContentFile(buffer.getvalue()))


def test_images_that_an_opened_page_loads_are_that_opening(ui_client, clinician, organization):
    patient = PatientFactory(organization=organization)
    scans = [ScanFactory(patient=patient, uploaded_by=clinician) for _ in range(2)]
    _heatmap(scans[0])

    ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    for scan in scans:  # the record's thumbnails
        assert ui_client.get(reverse("diagnosis:scan_image", args=[scan.pk])).status_code == 200
    ui_client.get(reverse("diagnosis:scan_detail", args=[scans[0].pk]))
    ui_client.get(reverse("diagnosis:scan_image", args=[scans[0].pk]))
    assert ui_client.get(reverse("diagnosis:scan_heatmap", args=[scans[0].pk])).status_code == 200

    logged = list(PatientAccess.objects.order_by("id").values_list("what", "scan"))
    assert logged == [("patient", None), ("scan", scans[0].pk)]


def test_an_image_or_heat_map_fetched_without_its_page_is_logged(ui_client, clinician, organization):
    patient = PatientFactory(organization=organization)
    shown, fetched = ScanFactory(patient=patient, uploaded_by=clinician), ScanFactory(patient=patient, uploaded_by=clinician)
    _heatmap(fetched)
    ui_client.get(reverse("diagnosis:scan_detail", args=[shown.pk]))  # another scan's page covers only its own

    assert ui_client.get(reverse("diagnosis:scan_heatmap", args=[fetched.pk])).status_code == 200
    assert ui_client.get(reverse("diagnosis:scan_image", args=[fetched.pk])).status_code == 200

    logged = list(PatientAccess.objects.order_by("id").values_list("what", "scan", "channel"))
    assert logged == [("scan", shown.pk, "web"), ("image", fetched.pk, "web")]  # once a minute, as any opening


def test_a_page_opened_more_than_ten_minutes_ago_no_longer_covers_its_images(ui_client, clinician, organization):
    patient = PatientFactory(organization=organization)
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    PatientAccess.objects.update(at=timezone.now() - datetime.timedelta(minutes=11))

    ui_client.get(reverse("diagnosis:scan_image", args=[scan.pk]))

    assert PatientAccess.objects.filter(what="image", scan=scan, channel="web").count() == 1
