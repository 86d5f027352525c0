"""Pages that update themselves, in a real browser without a worker: results and failures arrive in place
(the database changes under the open page), an ended session is said instead of read as news, and the
pages fit a phone's width. Fast: no model is loaded."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from diagnosis.models import Membership, Prediction

from ..factories import (
    PASSWORD,
    DonePredictionFactory,
    MembershipFactory,
    ModelVersionFactory,
    PatientFactory,
    PredictionFactory,
    ReviewFactory,
    ScanFactory,
    done_probabilities,
)
from .conftest import fits_without_horizontal_scrolling, log_in

pytestmark = pytest.mark.integration

PHONE = {"width": 375, "height": 740}


@pytest.fixture
def clinician(organization):
    return MembershipFactory(organization=organization, user__username="carol").user


def finish(prediction: Prediction, label: str) -> None:
    Prediction.objects.filter(pk=prediction.pk).update(
        status="done", label=label, probabilities=done_probabilities(label, 0.9), confidence=0.9,
        finished_at=timezone.now())


def test_a_failure_arriving_in_place_offers_the_review_for_the_clinicians_own_reading(page, organization, clinician):
    pending = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), status="queued")
    log_in(page, "carol", PASSWORD)
    page.goto(f"/scans/{pending.scan_id}/")
    expect(page.locator("#review")).to_be_hidden()

    Prediction.objects.filter(pk=pending.pk).update(status="failed", failure_reason="The worker ran out of memory",
                                                    finished_at=timezone.now())

    expect(page.locator("#review")).to_be_visible(timeout=20_000)
    expect(page.locator("#current-review")).to_have_text(
        "Not reviewed yet. The AI gave no result: choose the class you read on the slice.")
    expect(page.locator("#review-form input[name=label]:checked")).to_have_count(0)
    page.get_by_label("Tumor", exact=True).check()
    page.locator("#review-submit").click()
    expect(page.locator(".messages")).to_contain_text("you read the slice as Tumor (no AI result)")


def test_a_new_result_arriving_keeps_the_clinicians_earlier_reading_chosen(page, organization, clinician):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    ReviewFactory(prediction=DonePredictionFactory(scan=scan, label="Normal"), label="Cyst", reviewed_by=clinician)
    rerun = PredictionFactory(scan=scan, status="queued")
    log_in(page, "carol", PASSWORD)
    page.goto(f"/scans/{scan.pk}/")

    finish(rerun, "Tumor")

    expect(page.locator("#review-submit")).to_have_text("Correct to Cyst", timeout=20_000)
    expect(page.locator("#review-form input[name=label]:checked")).to_have_value("Cyst")


def test_a_result_arriving_marks_its_class_in_the_reliability_table(page, organization, clinician):
    per_class = {name: {"recall": 0.8, "precision": 0.7, "support": 10} for name in ("Cyst", "Normal", "Stone", "Tumor")}
    version = ModelVersionFactory(card={"metrics": {"test_series_split": {"series": 4, "per_class": per_class}}})
    pending = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), status="queued",
                                model_version=version)
    log_in(page, "carol", PASSWORD)
    page.goto(f"/scans/{pending.scan_id}/")
    expect(page.locator("#reliability tr.current")).to_have_count(0)

    finish(pending, "Stone")

    expect(page.locator("#reliability tr.current th")).to_have_text("Stone", timeout=20_000)
    page.locator("#reliability summary").click()
    expect(page.locator("#reliability")).to_contain_text("Tested on 4 patients (40 slices)")


def test_an_ended_session_is_said_on_the_worklist_instead_of_every_row_looking_reviewed(page, organization, clinician):
    for label in ("Stone", "Tumor"):
        DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), label=label)
    log_in(page, "carol", PASSWORD)
    expect(page.locator("#worklist tbody tr[data-scan]")).to_have_count(2)

    page.context.clear_cookies()

    expect(page.locator(".session-ended")).to_contain_text("Your session has ended", timeout=20_000)
    expect(page.locator(".session-ended a")).to_have_attribute("href", "/accounts/login/?next=%2F")
    expect(page.locator("#worklist-news")).to_be_hidden()
    expect(page.locator(".worklist-row-gone")).to_have_count(0)


def test_an_ended_session_is_said_on_a_scan_page_waiting_for_its_result(page, organization, clinician):
    pending = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), status="queued")
    log_in(page, "carol", PASSWORD)
    page.goto(f"/scans/{pending.scan_id}/")

    page.context.clear_cookies()

    expect(page.locator(".session-ended")).to_be_visible(timeout=20_000)


def test_the_pages_fit_a_phone_for_an_administrator_with_long_badges_and_a_long_comment(
        browser, live_server, organization):
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="ada").user
    patient = PatientFactory(organization=organization)
    uncertain = DonePredictionFactory(scan=ScanFactory(patient=patient), label="Tumor", top=0.5)
    reviewed = DonePredictionFactory(scan=ScanFactory(patient=patient), label="Stone")
    ReviewFactory(prediction=reviewed, reviewed_by=admin, label="Stone",
                  comment="See https://pacs.example.org/viewer/studies/1.2.840.113619.2.55.3.604688119.971.1234567890")
    context = browser.new_context(viewport=PHONE, base_url=live_server.url)
    page = context.new_page()
    try:
        log_in(page, "ada", PASSWORD)
        for url in ("/", f"/patients/{patient.pk}/", f"/scans/{reviewed.scan_id}/", f"/scans/{uncertain.scan_id}/",
                    "/staff/", f"/staff/{admin.pk}/", "/accounts/"):
            page.goto(url)
            assert fits_without_horizontal_scrolling(page), (url, page.evaluate("document.documentElement.scrollWidth"))
    finally:
        context.close()


def test_a_worklist_row_shows_a_new_diagnosis_of_its_scan_and_says_so(page, organization, clinician):
    first = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), label="Normal",
                                  top=0.95)
    log_in(page, "carol", PASSWORD)
    row = page.locator(f'#worklist tr[data-scan="{first.scan_id}"]')
    expect(row).to_contain_text("Normal")

    DonePredictionFactory(scan=first.scan, label="Tumor", top=0.9)

    expect(row).to_contain_text("Tumor", timeout=20_000)
    expect(page.locator("#worklist-news")).to_contain_text("1 scan was diagnosed again")


@pytest.mark.parametrize("where", ["worklist", "scan page"])
def test_a_page_polling_for_results_does_not_keep_an_idle_login_alive(page, organization, clinician, settings, where):
    # Longer than the worklist's 5 s between polls: polls counted as activity would keep this login.
    settings.KIDNEYWEB_IDLE_SECONDS = 8
    pending = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), status="queued")
    log_in(page, "carol", PASSWORD)
    if where == "scan page":
        page.goto(f"/scans/{pending.scan_id}/")

    expect(page.locator(".session-ended")).to_contain_text("Your session has ended", timeout=30_000)
    page.get_by_role("link", name="Log in again").click()
    expect(page.get_by_text("You were logged out after 1 minute without activity")).to_be_visible()


def test_the_open_worklist_says_in_place_which_scan_a_colleague_opened(page, organization, clinician):
    from diagnosis.models import PatientAccess

    bob = MembershipFactory(organization=organization, user__username="bob").user
    scan = DonePredictionFactory(label="Tumor", scan=ScanFactory(patient=PatientFactory(organization=organization))).scan
    log_in(page, "carol", PASSWORD)
    row = page.locator(f'#worklist tr[data-scan="{scan.pk}"]')
    expect(row).to_be_visible()
    expect(row.locator(".opened-by")).to_have_text("")

    PatientAccess.objects.create(patient=scan.patient, scan=scan, user=bob, what=PatientAccess.What.SCAN,
                                 channel=PatientAccess.Channel.WEB)

    expect(row.locator(".opened-by")).to_have_text("bob has it open")
    expect(page.locator("#worklist-news")).to_be_hidden()  # nothing moved: no reason to refresh


def test_a_clinician_withdraws_a_scan_uploaded_for_the_wrong_patient(page, organization, clinician, screenshot):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)
    DonePredictionFactory(scan=scan, label="Stone")
    log_in(page, "carol", PASSWORD)
    expect(page.locator(f'#worklist tr[data-scan="{scan.pk}"]')).to_be_visible()

    page.goto(f"/scans/{scan.pk}/")
    page.get_by_text("Withdraw this scan (entered in error)").click()
    page.get_by_label("Why").fill("uploaded for the wrong patient")
    page.get_by_role("button", name="Withdraw").click()

    expect(page.locator("#withdrawn")).to_contain_text("withdrawn as entered in error by carol")
    expect(page.locator("#withdrawn")).to_contain_text("uploaded for the wrong patient")
    expect(page.locator("#review-form")).to_have_count(0)
    screenshot(page, "scan-withdrawn")
    page.get_by_role("link", name="Worklist").click()
    expect(page.locator(f'#worklist tr[data-scan="{scan.pk}"]')).to_have_count(0)


def test_a_clinician_files_a_slice_for_the_right_patient_as_she_withdraws_it(page, organization, clinician, screenshot):
    ModelVersionFactory(is_active=True)
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="Wrong Person"), uploaded_by=clinician)
    DonePredictionFactory(scan=scan, label="Stone")
    PatientFactory(organization=organization, name="Right Person", mrn="R-2")
    log_in(page, "carol", PASSWORD)

    page.goto(f"/scans/{scan.pk}/")
    page.get_by_text("Withdraw this scan (entered in error)").click()
    page.get_by_label("Why").fill("uploaded for the wrong patient")
    page.get_by_label("Meant for the patient with MRN (optional)").fill("R-2")
    page.get_by_role("button", name="Withdraw").click()

    expect(page.locator(".breadcrumb")).to_contain_text("Right Person (MRN R-2)")
    expect(page.locator("#refiled-from")).to_contain_text(f"scan #{scan.pk} of Wrong Person")
    expect(page.locator("#refiled-from")).to_contain_text("uploaded for the wrong patient")
    screenshot(page, "scan-refiled")
    page.locator("#refiled-from a").click()
    expect(page.locator("#withdrawn")).to_contain_text("withdrawn as entered in error by carol")
    expect(page.locator("#withdrawn")).to_contain_text("Its slice was filed for Right Person (MRN R-2)")
    expect(page.get_by_text("File this slice for the right patient")).to_have_count(0)


def test_a_clinician_reads_through_a_filtered_worklist_and_stays_in_it(page, organization, clinician):
    def scan(label: str, top: float, hours: int) -> Prediction:
        return DonePredictionFactory(label=label, top=top, scan=ScanFactory(
            patient=PatientFactory(organization=organization),
            uploaded_at=timezone.now() - datetime.timedelta(hours=hours)))

    first, second = scan("Stone", 0.9, 6), scan("Stone", 0.9, 3)
    scan("Normal", 0.4, 9)  # needs review: more urgent than any stone, but not in this worklist
    log_in(page, "carol", PASSWORD)
    page.get_by_label("AI label").select_option("Stone")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name=f"Open scan {first.scan_id} of").click()

    expect(page.get_by_label("Stone (AI)")).to_be_checked()
    expect(page.get_by_role("link", name="← the filtered worklist")).to_be_visible()
    page.get_by_role("button", name="Save and open the next in the filtered worklist").click()
    expect(page).to_have_url(f"{page.url.split('/scans/')[0]}/scans/{second.scan_id}/?worklist=label%3DStone")

    page.get_by_label("Tumor", exact=True).check()
    page.get_by_role("button", name="Save and open the next in the filtered worklist").click()
    expect(page.locator(".messages")).to_contain_text("No other unreviewed scan matches the worklist's filters.")
    expect(page.get_by_label("AI label")).to_have_value("Stone")
    expect(page.locator("#worklist")).to_have_count(0)
