"""A patient withdraws consent, in a real browser: an administrator opens the erasure from the patient's page,
reads what goes and what stays, confirms with the MRN and a reason, and the record is gone from the list; its old
address says it was erased. On a tablet the confirmation fits the screen."""

import datetime

from playwright.sync_api import expect

from diagnosis.models import Membership, Patient, PatientErasure

from ..factories import PASSWORD, DonePredictionFactory, MembershipFactory, PatientFactory, ScanFactory
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_an_administrator_erases_the_record_of_a_patient_who_withdrew_consent(page, organization, screenshot):
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    patient = PatientFactory(organization=organization, name="Zebedee Quartermain", mrn="H-4711",
                             birth_date=datetime.date(1947, 3, 9))
    DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=boss))
    other = PatientFactory(organization=organization, name="Ada Lovelace", mrn="H-100200")
    log_in(page, "boss", PASSWORD)

    page.goto(f"/patients/{patient.pk}/")
    page.locator("#erase summary").click()
    page.get_by_role("link", name="Erase…").click()
    expect(page.get_by_role("heading", name="Erase this record for good?")).to_be_visible()
    expect(page.locator("#erase-preview")).to_contain_text("1 scan, with its images, results and heat maps")
    page.set_viewport_size(TABLET)
    assert fits_without_horizontal_scrolling(page)
    screenshot(page, "patient-erase")
    page.get_by_label("Why").fill("consent withdrawn on 2026-12-01")
    page.get_by_label("Type the record's MRN to confirm").fill("H-4711 ")
    page.get_by_role("button", name="Erase the record").click()

    expect(page.get_by_text("The record is erased with 1 scan")).to_be_visible()
    expect(page.get_by_role("link", name="Ada Lovelace")).to_be_visible()
    expect(page.get_by_text("Zebedee Quartermain")).to_have_count(0)
    assert list(Patient.objects.all()) == [other] and PatientErasure.objects.get().reason == "consent withdrawn on 2026-12-01"

    page.goto(f"/patients/{patient.pk}/")
    expect(page.get_by_role("heading", name="This record was erased")).to_be_visible()
    expect(page.locator("#erased-notice")).to_contain_text("by boss, with 1 scan: consent withdrawn on 2026-12-01")
    screenshot(page, "patient-erased")
