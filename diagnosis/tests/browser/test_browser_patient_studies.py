"""A patient's studies in a real browser: the clinician sees what the AI read in each study and opens the slice to
look at first; on a tablet the summary fits the screen."""

import datetime

from playwright.sync_api import expect

from ..factories import PASSWORD, DonePredictionFactory, MembershipFactory, PatientFactory, ScanFactory
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in

STUDY = "1.2.826.0.1.3680043.8.498.61"


def test_a_clinician_opens_the_slice_of_a_study_the_ai_read_as_most_serious(page, organization, screenshot):
    MembershipFactory(organization=organization, user__username="alice")
    patient = PatientFactory(organization=organization, name="Grace Hopper")
    study = {"patient": patient, "dicom_study_uid": STUDY, "dicom_accession_number": "A-20261206-61",
             "dicom_study_date": datetime.date(2026, 12, 5), "dicom_study_description": "CT ABDOMEN PELVIS W CONTRAST"}
    results = {label: DonePredictionFactory(scan=ScanFactory(**study), label=label, top=top)
               for label, top in (("Normal", 0.97), ("Tumor", 0.91), ("Cyst", 0.55))}
    DonePredictionFactory(scan=ScanFactory(patient=patient, dicom_study_uid=STUDY), label="Normal", top=0.95)
    tumour = results["Tumor"]
    log_in(page, "alice", PASSWORD)

    page.goto(f"/patients/{patient.pk}/")
    studies = page.locator("#studies")
    expect(studies).to_contain_text("2026-12-05 CT ABDOMEN PELVIS W CONTRAST")
    expect(studies).to_contain_text("Accession A-20261206-61")
    expect(studies).to_contain_text("Tumor 1 · Normal 2")
    expect(studies).to_contain_text("Needs review 1")
    page.set_viewport_size(TABLET)
    assert fits_without_horizontal_scrolling(page)
    screenshot(page, "patient-studies")
    studies.get_by_role("link", name=f"scan #{tumour.scan.pk}").click()

    assert page.url.endswith(f"/scans/{tumour.scan.pk}/")
