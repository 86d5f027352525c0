"""A person registered twice, in a real browser: an administrator finds the pair among the possible duplicates,
merges the emergency department's temporary record into the hospital's record after checking both side by side,
then finds the retired MRN leading to the record that stays; on a tablet the comparison fits the screen. A
clinician registering a patient again is shown the earlier record first."""

import datetime

from playwright.sync_api import expect

from diagnosis.models import Membership, Scan

from ..factories import PASSWORD, MembershipFactory, PatientFactory, ScanFactory
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_an_administrator_merges_a_temporary_record_into_the_hospitals_record(page, organization, screenshot):
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    born = datetime.date(1949, 3, 14)
    kept = PatientFactory(organization=organization, name="Ada Lovelace", mrn="H-100200", birth_date=born)
    temporary = PatientFactory(organization=organization, name="Ada Lovelace", mrn="ED-0007", birth_date=born)
    scan = ScanFactory(patient=temporary, uploaded_by=boss)
    log_in(page, "boss", PASSWORD)

    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_role("link", name="Possible duplicates").click()
    screenshot(page, "patient-duplicates")
    page.locator("#duplicate-pairs tbody tr td:nth-child(3) a").click()  # the record registered later
    assert page.url.endswith(f"/patients/{temporary.pk}/")
    expect(page.locator("#possible-duplicates")).to_contain_text("(MRN H-100200)")
    page.locator("#merge summary").click()
    page.get_by_label("MRN of the record that stays").fill("H-100200")
    page.get_by_label("Why").fill("registered in the emergency department under a temporary MRN")
    page.get_by_role("button", name="Compare the records").click()

    expect(page.get_by_role("heading", name="Merge two records of one person?")).to_be_visible()
    expect(page.locator("#merge-compare")).to_contain_text("ED-0007")
    expect(page.locator("#merge-compare")).to_contain_text("H-100200")
    page.set_viewport_size(TABLET)
    assert fits_without_horizontal_scrolling(page)
    screenshot(page, "patient-merge-compare")
    assert Scan.objects.get().patient_id == temporary.pk  # nothing moved yet
    page.get_by_role("button", name="Merge into MRN H-100200").click()

    expect(page.get_by_text("The record with MRN ED-0007 is merged into this one")).to_be_visible()
    expect(page.locator("#merges")).to_contain_text("registered in the emergency department")
    expect(page.locator(f'a[href="/scans/{scan.pk}/"]').first).to_be_visible()
    screenshot(page, "patient-merged")

    page.goto("/patients/?q=ED-0007")
    expect(page.locator("#merged-note")).to_contain_text("was merged into")
    page.locator("#merged-note a").click()
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    expect(page.locator("#merges")).to_be_visible()
    assert page.url.endswith(f"/patients/{kept.pk}/")


def test_registering_a_patient_again_names_the_earlier_record_first(page, organization, screenshot):
    MembershipFactory(organization=organization, user__username="carol")
    earlier = PatientFactory(organization=organization, name="Grace Hopper", mrn="H-7", birth_date=datetime.date(1906, 12, 9))
    log_in(page, "carol", PASSWORD)

    page.get_by_role("link", name="New patient").click()
    page.get_by_label("MRN").fill("ED-8")
    page.get_by_label("Name").fill("GRACE B. HOPPER")
    page.get_by_label("Birth date").fill("1906-12-09")
    page.get_by_role("button", name="Register patient").click()

    warning = page.locator("#possible-duplicates")
    expect(warning).to_contain_text("Is this patient registered already?")
    expect(warning).to_contain_text("(MRN H-7)")
    screenshot(page, "patient-possible-duplicate")
    warning.get_by_role("link").click()
    assert page.url.endswith(f"/patients/{earlier.pk}/")
    assert not organization.patients.filter(mrn="ED-8").exists()
