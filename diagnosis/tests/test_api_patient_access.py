"""Reading a patient, a scan, its image or its report through the API is logged as an API opening."""

from diagnosis.models import PatientAccess

from .factories import DonePredictionFactory, PatientFactory, ScanFactory


def test_api_reads_of_patient_data_are_logged_with_the_api_client_as_reader(api_client, clinician, organization):
    patient = PatientFactory(organization=organization)
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    DonePredictionFactory(scan=scan)

    for url in [f"/api/v1/patients/{patient.pk}/", f"/api/v1/scans/{scan.pk}/", f"/api/v1/scans/{scan.pk}/image/",
                f"/api/v1/scans/{scan.pk}/report/"]:
        response = api_client.get(url)
        assert response.status_code == 200, url

    logged = list(PatientAccess.objects.order_by("id").values_list("user", "what", "scan", "channel"))
    assert logged == [(clinician.pk, "patient", None, "api"), (clinician.pk, "scan", scan.pk, "api"),
                      (clinician.pk, "image", scan.pk, "api"), (clinician.pk, "report", scan.pk, "api")]


def test_a_heat_map_read_through_the_api_is_logged_as_an_image_opening(api_client, clinician, organization):
    import io

    from django.core.files.base import ContentFile
    from PIL import Image

    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)
    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (255, 0, 0, 90)).save(buffer, format="PNG")
    DonePredictionFactory(scan=scan, label="Stone").heatmap.save("h.png", ContentFile(buffer.getvalue()))

    assert api_client.get(f"/api/v1/scans/{scan.pk}/heatmap/").status_code == 200

    assert list(PatientAccess.objects.values_list("user", "what", "scan", "channel")) == [
        (clinician.pk, "image", scan.pk, "api")]


def test_polling_a_scan_for_its_result_is_logged_once_a_minute(api_client, clinician, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)

    for _ in range(5):
        assert api_client.get(f"/api/v1/scans/{scan.pk}/").status_code == 200

    assert PatientAccess.objects.filter(scan=scan).count() == 1


def test_lists_are_not_logged_as_opening_a_record(api_client, organization):
    PatientFactory(organization=organization)

    assert api_client.get("/api/v1/patients/").status_code == 200
    assert not PatientAccess.objects.exists()


def test_administrators_read_a_patients_access_log_newest_first(organization, clinician):
    from diagnosis.models import Membership

    from .factories import MembershipFactory, token_client

    patient = PatientFactory(organization=organization)
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    reader = token_client(clinician)
    reader.get(f"/api/v1/patients/{patient.pk}/")
    reader.get(f"/api/v1/scans/{scan.pk}/report/")
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="privacy").user

    response = token_client(admin).get(f"/api/v1/patients/{patient.pk}/accesses/")

    assert response.status_code == 200
    assert [(row["user"], row["what"], row["scan"], row["channel"]) for row in response.json()["results"]] == [
        ("alice", "report", scan.pk, "api"), ("alice", "patient", None, "api")]
    assert PatientAccess.objects.count() == 2  # reading the log is not itself an opening of patient data


def test_clinicians_may_not_read_the_access_log_and_other_organizations_patients_are_not_found(
        api_client, organization, other_organization):
    from diagnosis.models import Membership

    from .factories import MembershipFactory, token_client

    patient = PatientFactory(organization=organization)
    response = api_client.get(f"/api/v1/patients/{patient.pk}/accesses/")
    assert response.status_code == 403
    assert "Only administrators" in response.json()["detail"]

    outsider = MembershipFactory(organization=other_organization, role=Membership.Role.ADMIN).user
    assert token_client(outsider).get(f"/api/v1/patients/{patient.pk}/accesses/").status_code == 404
