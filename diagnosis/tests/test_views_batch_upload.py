"""Several slices in one form post (the page without JavaScript): each its own scan; a bad one stops nothing."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.models import Scan

from .factories import PatientFactory, image_bytes


def test_several_good_slices_become_several_scans_each_with_a_queued_diagnosis(ui_client, organization, active_model_version):
    patient = PatientFactory(organization=organization)
    files = [SimpleUploadedFile(f"s{i}.png", image_bytes(seed=i)) for i in range(3)]

    response = ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": files})

    assert response.status_code == 302 and response["Location"] == reverse("diagnosis:patient_detail", args=[patient.pk])
    scans = Scan.objects.filter(patient=patient)
    assert sorted(s.original_filename for s in scans) == ["s0.png", "s1.png", "s2.png"]
    assert all(s.predictions.get().status == "queued" for s in scans)


def test_a_bad_file_is_listed_with_its_reason_and_the_good_ones_are_kept(ui_client, organization, active_model_version):
    patient = PatientFactory(organization=organization)
    files = [
        SimpleUploadedFile("good.png", image_bytes()),
        SimpleUploadedFile("notes.png", b"this is text"),
        SimpleUploadedFile("also-good.jpg", image_bytes("JPEG", seed=4)),
    ]

    response = ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": files})

    page = response.content.decode()
    assert response.status_code == 400
    assert "1 file refused" in page and "<strong>notes.png</strong>: The file is not a PNG, JPEG or DICOM image" in page
    assert "2 of 3 files uploaded." in page
    assert sorted(Scan.objects.values_list("original_filename", flat=True)) == ["also-good.jpg", "good.png"]


def test_an_empty_file_is_refused_by_name_and_the_others_are_kept(ui_client, organization, active_model_version):
    patient = PatientFactory(organization=organization)
    files = [SimpleUploadedFile("good.png", image_bytes()), SimpleUploadedFile("blank.png", b"")]

    response = ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": files})

    page = response.content.decode()
    assert response.status_code == 400 and "<strong>blank.png</strong>: The file is empty." in page
    assert list(Scan.objects.values_list("original_filename", flat=True)) == ["good.png"]


def test_posting_no_file_says_a_file_is_required(ui_client, organization, active_model_version):
    patient = PatientFactory(organization=organization)

    response = ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {})

    assert response.status_code == 400 and "This field is required." in response.content.decode()


def test_the_patient_page_has_a_drop_zone_and_a_multiple_file_picker(ui_client, organization):
    patient = PatientFactory(organization=organization)

    page = ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    assert 'id="dropzone"' in page and "js/batch_upload.js" in page
    assert 'type="file" name="image" accept="image/png,image/jpeg,application/dicom,.dcm" multiple' in page
    assert f'data-api-url="{reverse("api:scan-list")}"' in page


def test_a_series_longer_than_djangos_default_100_files_uploads_in_one_post(ui_client, organization, active_model_version):
    patient = PatientFactory(organization=organization)
    files = [SimpleUploadedFile(f"s{i:03d}.png", image_bytes(size=(16, 16), seed=i)) for i in range(101)]

    response = ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": files})

    assert response.status_code == 302
    assert Scan.objects.filter(patient=patient).count() == 101


def test_more_files_than_allowed_get_a_page_that_says_the_limit_and_nothing_is_uploaded(
        ui_client, organization, active_model_version, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    patient = PatientFactory(organization=organization)
    files = [SimpleUploadedFile(f"s{i}.png", image_bytes(seed=i)) for i in range(4)]

    response = ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": files})

    assert response.status_code == 400
    page = response.content.decode()
    assert "At most 3 files can be sent in one upload" in page and "Nothing was uploaded" in page
    assert not Scan.objects.exists()


def test_a_file_that_fails_unexpectedly_is_listed_and_the_files_after_it_are_still_uploaded(
        ui_client, organization, active_model_version, monkeypatch):
    from diagnosis.services import scans as scan_services

    real = scan_services.validate_scan_image

    def failing_on_one_file(file):  # a fault injected into one file, as a server bug would strike it
        if file.name == "boom.png":
            raise RuntimeError("simulated server fault")
        return real(file)

    monkeypatch.setattr(scan_services, "validate_scan_image", failing_on_one_file)
    patient = PatientFactory(organization=organization)
    files = [SimpleUploadedFile(name, image_bytes(seed=i)) for i, name in enumerate(["a.png", "boom.png", "c.png"])]

    response = ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": files})

    assert response.status_code == 400
    page = response.content.decode()
    assert "boom.png" in page and "could not be processed because of an error on the server" in page
    assert sorted(s.original_filename for s in Scan.objects.filter(patient=patient)) == ["a.png", "c.png"]
