import datetime

import pytest
from fhir.resources.R4B.bundle import Bundle
from rest_framework.test import APIClient

from diagnosis import services
from diagnosis.models import PatientAccess, Prediction

from .factories import DonePredictionFactory, ModelVersionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory


# The required value sets of R4, which the models below do not check.
STATUSES = {
    "DiagnosticReport": {"registered", "partial", "preliminary", "final", "amended", "corrected", "appended",
                         "cancelled", "entered-in-error", "unknown"},
    "Observation": {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error",
                    "unknown"},
    "Media": {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error",
              "unknown"},
}


def _fhir(client, scan, **headers):
    response = client.get(f"/api/v1/scans/{scan.pk}/fhir/", **headers)
    assert response.status_code == 200, response.content
    bundle = response.json()
    Bundle.model_validate(bundle)  # raises on a field or type FHIR R4 does not allow
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] in STATUSES:
            assert resource["status"] in STATUSES[resource["resourceType"]]
        assert all(r["reference"] in {e["fullUrl"] for e in bundle["entry"]}
                   for r in _references(resource)), "a reference points outside the bundle"
    return response, bundle


def _references(value):
    if isinstance(value, dict):
        if "reference" in value:
            yield value
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _resources(bundle, kind):
    return [entry["resource"] for entry in bundle["entry"] if entry["resource"]["resourceType"] == kind]


@pytest.fixture
def scan(organization, clinician):
    patient = PatientFactory(organization=organization, name="Ada Example", mrn="MRN-0042",
                             birth_date=datetime.date(1970, 5, 17))
    return ScanFactory(patient=patient, uploaded_by=clinician)


def test_an_unreviewed_ai_result_is_a_preliminary_report_with_its_probabilities(api_client, scan):
    DonePredictionFactory(scan=scan, label="Tumor", top=0.91)

    response, bundle = _fhir(api_client, scan)

    assert response["Content-Type"].startswith("application/fhir+json")
    assert response["Cache-Control"] == "private, no-store"
    assert bundle["type"] == "collection"
    report = bundle["entry"][0]["resource"]
    assert report["resourceType"] == "DiagnosticReport"
    assert report["status"] == "preliminary"
    assert report["identifier"][0]["value"].endswith(f"/api/v1/scans/{scan.pk}/")
    assert report["conclusionCode"][0]["coding"][0]["code"] == "Tumor"
    assert "not yet reviewed" in report["conclusion"]
    assert report["presentedForm"][0]["url"].endswith(f"/api/v1/scans/{scan.pk}/report/")
    [observation] = _resources(bundle, "Observation")
    assert observation["status"] == "preliminary"
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == "Tumor"
    probabilities = {c["code"]["text"]: c["valueQuantity"]["value"] for c in observation["component"]}
    assert probabilities["Probability of Tumor"] == pytest.approx(0.91)
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert [r["reference"] for r in report["result"]] == [
        e["fullUrl"] for e in bundle["entry"] if e["resource"] is observation]


def test_the_patient_is_identified_by_the_organizations_mrn(api_client, scan, organization, settings):
    settings.KIDNEYWEB_FHIR_MRN_SYSTEM = "urn:oid:1.2.3.4.{organization}"
    DonePredictionFactory(scan=scan)

    _, bundle = _fhir(api_client, scan)

    [patient] = _resources(bundle, "Patient")
    assert patient["identifier"][0]["value"] == "MRN-0042"
    assert patient["identifier"][0]["system"] == f"urn:oid:1.2.3.4.{organization.slug}"
    assert patient["name"][0]["text"] == "Ada Example"
    assert (patient["birthDate"], patient["gender"]) == ("1970-05-17", "female")
    report = bundle["entry"][0]
    assert report["resource"]["subject"]["reference"] == next(
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")


def test_a_scan_of_a_merged_record_names_its_retired_mrn_as_an_old_identifier(api_client, scan, organization, boss):
    duplicate = PatientFactory(organization=organization, mrn="ED-5", birth_date=scan.patient.birth_date)
    moved = ScanFactory(patient=duplicate, uploaded_by=boss, width=80)  # another slice
    DonePredictionFactory(scan=moved)
    services.patient_merge(duplicate=duplicate, into=scan.patient, user=boss, reason="registered twice")

    _, bundle = _fhir(api_client, moved)

    [patient] = _resources(bundle, "Patient")
    assert [(i["use"], i["value"]) for i in patient["identifier"]] == [("usual", "MRN-0042"), ("old", "ED-5")]


def test_a_review_makes_the_report_final_and_concludes_with_the_clinicians_reading(api_client, scan):
    prediction = DonePredictionFactory(scan=scan, label="Stone")
    ReviewFactory(scan=scan, prediction=prediction, label="Tumor", comment="Enhancing mass, upper pole.",
                  reviewed_by__first_name="Grace", reviewed_by__last_name="Hopper")

    _, bundle = _fhir(api_client, scan)

    report = bundle["entry"][0]["resource"]
    assert report["status"] == "final"
    assert report["conclusionCode"][0]["coding"][0]["code"] == "Tumor"
    assert report["resultsInterpreter"] == [{"display": "Grace Hopper"}]
    ai, reading = _resources(bundle, "Observation")
    assert reading["status"] == "final"
    assert reading["valueCodeableConcept"]["coding"][0]["code"] == "Tumor"
    assert reading["derivedFrom"] == [{"reference": report["result"][0]["reference"]}]
    notes = [note["text"] for note in reading["note"]]
    assert notes == ["Corrects the AI result (Stone).", "Enhancing mass, upper pole."]
    assert ai["valueCodeableConcept"]["coding"][0]["code"] == "Stone"


def test_a_second_review_marks_the_report_amended(api_client, scan):
    prediction = DonePredictionFactory(scan=scan, label="Cyst")
    ReviewFactory(scan=scan, prediction=prediction, label="Cyst",
                  reviewed_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    ReviewFactory(scan=scan, prediction=prediction, label="Normal")

    _, bundle = _fhir(api_client, scan)

    assert bundle["entry"][0]["resource"]["status"] == "amended"
    assert bundle["entry"][0]["resource"]["conclusionCode"][0]["coding"][0]["code"] == "Normal"


def test_a_restored_scans_reading_given_before_its_withdrawal_replaces_the_entered_in_error_report_as_amended(
        api_client, scan, clinician):
    prediction = DonePredictionFactory(scan=scan, label="Cyst")
    ReviewFactory(scan=scan, prediction=prediction, label="Cyst")
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")
    services.scan_restore(scan=scan, user=clinician, reason="it was the right patient after all")

    _, bundle = _fhir(api_client, scan)

    report = bundle["entry"][0]["resource"]
    assert report["status"] == "amended"
    [reading] = [o for o in _resources(bundle, "Observation") if o["code"]["text"].startswith("Clinician")]
    assert reading["status"] == "amended"
    restored_at = scan.withdrawals.get().restored_at
    assert report["issued"] == restored_at.isoformat()


def test_a_withdrawn_scan_is_reported_entered_in_error(api_client, withdrawn_scan):
    _, bundle = _fhir(api_client, withdrawn_scan)

    report = bundle["entry"][0]["resource"]
    assert report["status"] == "entered-in-error"
    assert "wrong patient" in report["conclusion"]
    assert "conclusionCode" not in report
    assert {o["status"] for o in _resources(bundle, "Observation")} == {"entered-in-error"}


@pytest.mark.parametrize(("status", "expected"), [
    (Prediction.Status.QUEUED, "registered"),
    (Prediction.Status.RUNNING, "registered"),
    (Prediction.Status.FAILED, "cancelled"),
])
def test_a_report_without_an_ai_result_says_why_and_concludes_no_class(api_client, scan, status, expected):
    PredictionFactory(scan=scan, status=status, failure_reason="model file missing" if status == "failed" else "")

    _, bundle = _fhir(api_client, scan)

    report = bundle["entry"][0]["resource"]
    assert report["status"] == expected
    assert "conclusionCode" not in report and "result" not in report
    assert _resources(bundle, "Observation") == []
    if status == Prediction.Status.FAILED:
        assert "model file missing" in report["conclusion"]


def test_the_ai_result_notes_how_often_the_models_labels_of_its_class_were_right(api_client, scan):
    per_class = {name: {"recall": 0.66, "precision": 0.7, "support": 168} for name in ("Cyst", "Normal", "Stone", "Tumor")}
    DonePredictionFactory(scan=scan, label="Tumor", model_version=ModelVersionFactory(
        card={"metrics": {"test_series_split": {"per_class": per_class}}}))

    _, bundle = _fhir(api_client, scan)

    [observation] = _resources(bundle, "Observation")
    assert observation["note"][0]["text"] == (
        "In testing, 70% of the model's Tumor labels were right; it labelled 66% of Tumor slices so "
        "(test patients none of its training saw).")


def test_an_uncertain_result_carries_its_needs_review_reason(api_client, scan):
    DonePredictionFactory(scan=scan, label="Stone", top=0.4)

    _, bundle = _fhir(api_client, scan)

    [observation] = _resources(bundle, "Observation")
    assert observation["note"][0]["text"].startswith("Needs review. Uncertain")
    assert "Needs review" in bundle["entry"][0]["resource"]["conclusion"]


def test_asking_again_gives_the_same_full_urls_and_a_new_result_keeps_the_reports(api_client, scan):
    DonePredictionFactory(scan=scan, label="Cyst")
    _, first = _fhir(api_client, scan)
    _, again = _fhir(api_client, scan)
    DonePredictionFactory(scan=scan, label="Normal",
                          queued_at=datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
    _, rerun = _fhir(api_client, scan)

    urls = [e["fullUrl"] for e in first["entry"]]
    assert urls == [e["fullUrl"] for e in again["entry"]]
    assert len(set(urls)) == len(urls)
    assert rerun["entry"][0]["fullUrl"] == urls[0]
    assert _resources(rerun, "Observation")[0]["valueCodeableConcept"]["text"] == "Normal"
    assert set(e["fullUrl"] for e in rerun["entry"]) != set(urls)


def test_the_export_is_logged_as_an_access_and_linked_from_the_scan(api_client, scan, clinician):
    DonePredictionFactory(scan=scan)

    _fhir(api_client, scan)

    assert PatientAccess.objects.filter(patient=scan.patient, scan=scan, user=clinician,
                                        what=PatientAccess.What.FHIR, channel="api").count() == 1
    assert api_client.get(f"/api/v1/scans/{scan.pk}/").json()["fhir_url"].endswith(f"/api/v1/scans/{scan.pk}/fhir/")


def test_plain_json_may_be_asked_for(api_client, scan):
    DonePredictionFactory(scan=scan)

    response, bundle = _fhir(api_client, scan, HTTP_ACCEPT="application/json")

    assert response["Content-Type"].startswith("application/json")
    assert bundle["resourceType"] == "Bundle"


def test_another_organizations_scan_answers_404_as_json(api_client, other_organization):
    theirs = ScanFactory(patient=PatientFactory(organization=other_organization))

    response = api_client.get(f"/api/v1/scans/{theirs.pk}/fhir/", HTTP_ACCEPT="application/fhir+json")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()
    assert not PatientAccess.objects.filter(scan=theirs).exists()


def test_anonymous_export_answers_401(scan):
    assert APIClient().get(f"/api/v1/scans/{scan.pk}/fhir/").status_code == 401


def test_a_reading_of_an_earlier_result_does_not_claim_to_derive_from_a_newer_one(api_client, scan):
    earlier = DonePredictionFactory(scan=scan, label="Cyst",
                                    queued_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    ReviewFactory(scan=scan, prediction=earlier, label="Cyst")
    DonePredictionFactory(scan=scan, label="Stone")

    _, bundle = _fhir(api_client, scan)

    ai, reading = _resources(bundle, "Observation")
    assert ai["valueCodeableConcept"]["text"] == "Stone"
    assert "derivedFrom" not in reading
    assert reading["note"][0]["text"] == "Confirms the AI result (Cyst)."


@pytest.mark.parametrize("label, code", [("Normal", "281900007"), ("Cyst", "722223000"), ("Stone", "95570007"),
                                         ("Tumor", "126880001")])
def test_each_class_also_carries_its_snomed_ct_concept(api_client, scan, label, code):
    prediction = DonePredictionFactory(scan=scan, label=label)
    ReviewFactory(scan=scan, prediction=prediction, label=label)

    _, bundle = _fhir(api_client, scan)

    report = bundle["entry"][0]["resource"]
    for concept in [report["conclusionCode"][0], *(o["valueCodeableConcept"] for o in _resources(bundle, "Observation"))]:
        systems = {coding["system"]: coding["code"] for coding in concept["coding"]}
        assert systems == {"urn:kidneyweb:kidney-ct-class": label, "http://snomed.info/sct": code}


def test_a_class_with_no_snomed_ct_concept_keeps_its_local_code_only(api_client, scan):
    version = ModelVersionFactory(class_names=["Healthy", "Lesion"])
    DonePredictionFactory(scan=scan, model_version=version, label="Lesion",
                          probabilities={"Healthy": 0.2, "Lesion": 0.8})

    _, bundle = _fhir(api_client, scan)

    [observation] = _resources(bundle, "Observation")
    assert observation["valueCodeableConcept"]["coding"] == [
        {"system": "urn:kidneyweb:kidney-ct-class", "code": "Lesion", "display": "Lesion"}]


def test_a_refiled_scans_report_names_the_report_it_revises_by_its_identifier_and_nothing_of_that_patient(
    api_client, scan, organization, clinician, active_model_version
):
    DonePredictionFactory(scan=scan)
    right = PatientFactory(organization=organization, name="Bea Right", mrn="MRN-0099")
    refiled = services.scan_refile(scan=scan, patient=right, user=clinician, reason="uploaded for the wrong patient")

    _, bundle = _fhir(api_client, refiled)
    _, first = _fhir(api_client, scan)

    [provenance] = _resources(bundle, "Provenance")
    assert provenance["target"] == [{"reference": bundle["entry"][0]["fullUrl"]}]
    assert provenance["recorded"] == refiled.uploaded_at.isoformat()
    assert provenance["agent"] == [{"who": {"display": clinician.get_full_name() or clinician.get_username()}}]
    [entity] = provenance["entity"]
    assert entity["role"] == "revision"
    assert entity["what"]["type"] == "DiagnosticReport"
    assert entity["what"]["identifier"] == first["entry"][0]["resource"]["identifier"][0]  # as the system filed it
    assert "Ada Example" not in str(provenance) and "MRN-0042" not in str(provenance)
    assert not _resources(first, "Provenance")  # the first filing's report, in the other record, says nothing back


def test_once_the_refiling_is_undone_its_report_names_the_first_filing_as_its_source_only(
    api_client, scan, organization, clinician, active_model_version
):
    DonePredictionFactory(scan=scan)
    right = PatientFactory(organization=organization)
    refiled = services.scan_refile(scan=scan, patient=right, user=clinician, reason="uploaded for the wrong patient")
    services.scan_withdraw(scan=refiled, user=clinician, reason="it was the first patient's after all")
    services.scan_restore(scan=scan, user=clinician, reason="it was the right patient after all")

    _, bundle = _fhir(api_client, refiled)

    assert bundle["entry"][0]["resource"]["status"] == "entered-in-error"
    [provenance] = _resources(bundle, "Provenance")
    assert provenance["entity"][0]["role"] == "source"
    assert "restored since" in provenance["entity"][0]["what"]["display"]


def test_a_dicom_slices_report_links_its_study_its_order_and_its_instance_in_the_archive(
        api_client, organization, clinician, settings):
    settings.KIDNEYWEB_FHIR_ACCESSION_SYSTEM = "urn:oid:1.2.3.5.{organization}"
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician,
                       dicom_study_uid="1.2.826.0.1.3680043.8.498.7", dicom_series_uid="1.2.826.0.1.8",
                       dicom_instance_uid="1.2.826.0.1.9", dicom_accession_number="A-20261206-7")
    DonePredictionFactory(scan=scan)

    png = ScanFactory(patient=scan.patient, uploaded_by=clinician)

    _, bundle = _fhir(api_client, scan)
    _, plain = _fhir(api_client, png)

    report = bundle["entry"][0]["resource"]
    assert report["imagingStudy"][0]["identifier"] == {"system": "urn:dicom:uid",
                                                       "value": "urn:oid:1.2.826.0.1.3680043.8.498.7"}
    [order] = report["basedOn"]
    assert order["type"] == "ServiceRequest" and order["identifier"]["type"]["coding"][0]["code"] == "ACSN"
    assert (order["identifier"]["system"], order["identifier"]["value"]) == (
        f"urn:oid:1.2.3.5.{organization.slug}", "A-20261206-7")
    [media] = _resources(bundle, "Media")
    assert media["identifier"] == [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.9"}]
    assert not {"imagingStudy", "basedOn"} & set(plain["entry"][0]["resource"])
    assert "identifier" not in _resources(plain, "Media")[0]
    api = api_client.get(f"/api/v1/scans/{scan.pk}/").json()
    assert api["dicom"] == {"study_uid": "1.2.826.0.1.3680043.8.498.7", "series_uid": "1.2.826.0.1.8",
                            "instance_uid": "1.2.826.0.1.9", "accession_number": "A-20261206-7",
                            "study_date": None, "study_time": None, "study_description": "",
                            "result_url": f"http://testserver/api/v1/scans/{scan.pk}/dicom/",
                            "report_url": f"http://testserver/api/v1/scans/{scan.pk}/dicom-sr/",
                            "archive": None, "archive_rejection": None}  # no archive set
    assert api_client.get(f"/api/v1/scans/{png.pk}/").json()["dicom"] is None
