"""The clinician UI: login everywhere, tenancy, forms and the self-updating scan page."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import services
from diagnosis.models import Patient, Scan
from diagnosis.tasks import predict_scan

from .factories import CLASS_NAMES, PASSWORD, PatientFactory, ScanFactory, UserFactory, image_bytes


@pytest.fixture
def patient(organization):
    return PatientFactory(organization=organization, name="Ada Lovelace", mrn="A-1")


@pytest.fixture
def theirs(other_organization):
    patient = PatientFactory(organization=other_organization)
    return patient, ScanFactory(patient=patient)


def page_urls(patient, scan):
    return [
        reverse("diagnosis:patient_list"),
        reverse("diagnosis:worklist_rows"),
        reverse("diagnosis:patient_create"),
        reverse("diagnosis:patient_detail", args=[patient.pk]),
        reverse("diagnosis:patient_edit", args=[patient.pk]),
        reverse("diagnosis:scan_detail", args=[scan.pk]),
        reverse("diagnosis:scan_status", args=[scan.pk]),
        reverse("diagnosis:scan_item", args=[scan.pk]),
        reverse("diagnosis:scan_image", args=[scan.pk]),
    ]


def test_every_page_requires_login(client, patient):
    scan = ScanFactory(patient=patient)

    for url in page_urls(patient, scan):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_a_clinician_logs_in_with_username_and_password_and_logs_out(client, clinician):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("diagnosis:home")
    assert client.get(reverse("diagnosis:patient_list")).status_code == 200

    client.post(reverse("logout"))

    assert client.get(reverse("diagnosis:patient_list")).status_code == 302


def test_a_wrong_password_shows_an_error(client, clinician):
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "username or password is wrong" in response.content.decode()


def test_a_user_without_an_organization_is_told_so(client, db):
    client.force_login(UserFactory())

    response = client.get(reverse("diagnosis:patient_list"))

    assert response.status_code == 403
    assert "does not belong to a hospital organization" in response.content.decode()


def test_another_organizations_pages_are_404(ui_client, theirs):
    patient, scan = theirs

    for url in page_urls(patient, scan)[3:]:
        assert ui_client.get(url).status_code == 404, url
    upload = ui_client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": SimpleUploadedFile("s.png", image_bytes())}
    )
    assert upload.status_code == 404
    assert ui_client.post(reverse("diagnosis:scan_rerun", args=[scan.pk])).status_code == 404


def test_the_patient_list_shows_own_patients_and_searches(ui_client, patient, organization, theirs):
    PatientFactory(organization=organization, name="Grace Hopper", mrn="G-1")

    everyone = ui_client.get(reverse("diagnosis:patient_list")).content.decode()
    found = ui_client.get(reverse("diagnosis:patient_list"), {"q": "a-1"}).content.decode()

    assert "Ada Lovelace" in everyone and "Grace Hopper" in everyone
    assert theirs[0].name not in everyone
    assert "Ada Lovelace" in found and "Grace Hopper" not in found


def test_creating_a_patient_redirects_to_the_patient_page(ui_client, organization):
    response = ui_client.post(
        reverse("diagnosis:patient_create"),
        {"mrn": "N-1", "name": "New Person", "birth_date": "1980-05-01", "sex": "M"},
    )

    patient = Patient.objects.get(mrn="N-1")
    assert patient.organization == organization
    assert response["Location"] == reverse("diagnosis:patient_detail", args=[patient.pk])


def test_a_duplicate_mrn_is_shown_as_a_form_error(ui_client, patient):
    response = ui_client.post(
        reverse("diagnosis:patient_create"),
        {"mrn": "A-1", "name": "Someone", "birth_date": "1980-05-01", "sex": "F"},
    )

    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert Patient.objects.filter(mrn="A-1").count() == 1


def test_uploading_a_slice_leads_to_its_scan_page_with_a_queued_diagnosis(ui_client, patient, active_model_version):
    response = ui_client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": SimpleUploadedFile("s.jpg", image_bytes("JPEG"))}
    )

    scan = Scan.objects.get(patient=patient)
    assert response["Location"] == reverse("diagnosis:scan_detail", args=[scan.pk])
    page = ui_client.get(response["Location"]).content.decode()
    assert "Queued" in page
    assert 'data-final="false"' in page
    assert reverse("diagnosis:scan_status", args=[scan.pk]) in page
    assert "js/scan_status.js" in page


def test_a_dicom_slices_page_names_where_it_is_in_the_archive_and_a_pngs_does_not(ui_client, patient,
                                                                                 active_model_version):
    import numpy as np

    from mlcore.synthetic import dicom_bytes

    data = dicom_bytes(np.full((32, 32), 1100, np.uint16), patient_id=patient.mrn, study_uid="1.2.826.0.1.3680043.8.498.7",
                       accession_number="A-7", study_date="20261205", study_time="093000", study_description="CT KUB")
    for name, content in (("IM1.dcm", data), ("a.png", image_bytes())):
        ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": SimpleUploadedFile(name, content)})
    dicom, png = Scan.objects.get(format="PNG", dicom_study_uid__gt=""), Scan.objects.get(dicom_study_uid="")

    page = ui_client.get(reverse("diagnosis:scan_detail", args=[dicom.pk])).content.decode()

    caption = " ".join(page.split('id="dicom-identifiers">')[1].split("</p>")[0].split())
    assert caption.startswith('In the archive: the study of <span id="study-date">2026-12-05 09:30</span> (<bdi>CT KUB</bdi>), '
                              'study <code class="uid">1.2.826.0.1.3680043.8.498.7</code>')
    assert f'instance <code class="uid">{dicom.dicom_instance_uid}</code>;' in page
    assert '<span id="accession-number">A-7</span>' in page
    assert "In the archive" not in ui_client.get(reverse("diagnosis:scan_detail", args=[png.pk])).content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"GIF89a nonsense", "not a PNG, JPEG or DICOM"), (image_bytes("JPEG", (128, 128), "RGB")[:900], "truncated or corrupt")],
)
def test_a_refused_upload_shows_the_reason_on_the_patient_page(ui_client, patient, active_model_version, data, message):
    response = ui_client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": SimpleUploadedFile("s.png", data)}
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Scan.objects.exists()


def test_an_upload_without_an_active_model_shows_why(ui_client, patient):
    response = ui_client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]), {"image": SimpleUploadedFile("s.png", image_bytes())}
    )

    assert response.status_code == 400
    assert "No diagnosis model is active" in response.content.decode()


def test_the_patient_page_lists_scans_newest_first_with_their_diagnosis(ui_client, patient, clinician, tiny_model_version):
    first = services.scan_create(patient=patient, file=SimpleUploadedFile("first.png", image_bytes()), uploaded_by=clinician)
    predict_scan.apply(args=[first.latest_prediction.pk])
    services.scan_create(patient=patient, file=SimpleUploadedFile("second.png", image_bytes(seed=3)), uploaded_by=clinician)

    page = ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    assert page.index("second.png") < page.index("first.png")
    first.latest_prediction.refresh_from_db()
    assert first.latest_prediction.label in page and "Queued" in page


def test_the_status_endpoint_and_the_scan_page_show_the_finished_result(ui_client, patient, clinician, tiny_model_version):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)
    status_url = reverse("diagnosis:scan_status", args=[scan.pk])
    assert ui_client.get(status_url).json()["status"] == "queued"

    predict_scan.apply(args=[scan.latest_prediction.pk])

    state = ui_client.get(status_url).json()
    assert state["status"] == "done" and state["final"] is True
    assert state["label"] in CLASS_NAMES
    assert [row["name"] for row in state["probabilities"]] and len(state["probabilities"]) == len(CLASS_NAMES)
    assert state["model_version"] == tiny_model_version.name
    assert "out_of_scope_reason" in state
    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    assert 'data-final="true"' in page and tiny_model_version.name in page
    for name in CLASS_NAMES:
        assert f'<span class="prob-name">{name}</span>' in page


def test_a_scans_list_item_is_served_alone_and_says_when_its_diagnosis_is_final(ui_client, patient, clinician,
                                                                               tiny_model_version):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)
    item_url = reverse("diagnosis:scan_item", args=[scan.pk])
    queued = ui_client.get(item_url)
    assert queued.status_code == 200 and queued["Cache-Control"].startswith("max-age=0")
    html = queued.content.decode()
    assert html.strip().startswith("<li") and 'data-final="false"' in html and "Queued" in html
    assert f'data-item-url="{item_url}"' in html

    predict_scan.apply(args=[scan.latest_prediction.pk])

    html = ui_client.get(item_url).content.decode()
    assert 'data-final="true"' in html and scan.latest_prediction.label in html
    # The patient page's list holds the same markup, so the script can swap one for the other.
    assert html.strip() in ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()


def test_a_failed_diagnosis_shows_its_reason(ui_client, patient, clinician, active_model_version):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)
    services.prediction_fail(prediction_id=scan.latest_prediction.pk, reason="The model could not read the image")

    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    state = ui_client.get(reverse("diagnosis:scan_status", args=[scan.pk])).json()

    assert "The model could not read the image" in page
    assert state["status"] == "failed" and state["failure_reason"] == "The model could not read the image"


def test_diagnose_again_queues_a_new_prediction(ui_client, patient, clinician, active_model_version):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)
    services.prediction_fail(prediction_id=scan.latest_prediction.pk, reason="The worker ran out of memory")

    ui_client.post(reverse("diagnosis:scan_rerun", args=[scan.pk]))

    assert scan.predictions.count() == 2


def test_diagnose_again_while_a_diagnosis_is_queued_says_so_and_queues_nothing(ui_client, patient, clinician,
                                                                                active_model_version):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)

    page = ui_client.post(reverse("diagnosis:scan_rerun", args=[scan.pk]), follow=True).content.decode()

    assert "A diagnosis of this scan is already queued" in page
    assert scan.predictions.count() == 1


def test_the_scan_image_is_served_only_with_no_store_caching(ui_client, patient, clinician, active_model_version):
    data = image_bytes("PNG", (20, 20))
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", data), uploaded_by=clinician)

    response = ui_client.get(reverse("diagnosis:scan_image", args=[scan.pk]))

    assert response["Content-Type"] == "image/png" and "no-store" in response["Cache-Control"]
    assert b"".join(response.streaming_content) == data


def test_the_patient_list_pages_keep_the_search(ui_client, organization):
    for number in range(27):
        PatientFactory(organization=organization, name=f"Ada Twin {number:02d}", mrn=f"T-{number}")

    first = ui_client.get(reverse("diagnosis:patient_list"), {"q": "ada twin"}).content.decode()
    second = ui_client.get(reverse("diagnosis:patient_list"), {"q": "ada twin", "page": 2}).content.decode()

    assert "Page 1 of 2" in first and 'href="?q=ada+twin&amp;page=2">Next</a>' in first
    assert "Page 2 of 2" in second and 'href="?q=ada+twin&amp;page=1">Previous</a>' in second
