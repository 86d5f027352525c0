"""A patient asks for their data, in a real browser: an administrator prepares the whole record from the patient's
page, watches its page change from queued to ready while the worker builds it, without reloading, and downloads
the ZIP."""

import zipfile

from playwright.sync_api import expect

from diagnosis import services
from diagnosis.models import Membership, PatientAccess, RecordExport

from ..factories import PASSWORD, DonePredictionFactory, MembershipFactory, PatientFactory, ScanFactory
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_an_administrator_prepares_the_record_and_downloads_it_when_the_page_says_it_is_ready(
        page, organization, inference_queue, screenshot, tmp_path):
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    patient = PatientFactory(organization=organization, name="Zebedee Quartermain", mrn="H-4712")
    scan = ScanFactory(patient=patient, uploaded_by=boss)
    DonePredictionFactory(scan=scan)
    log_in(page, "boss", PASSWORD)
    inference_queue.drain("exports")  # what earlier tests left there

    page.goto(f"/patients/{patient.pk}/")
    page.locator("#export summary").click()
    page.get_by_role("button", name="Prepare the record (ZIP)").click()
    expect(page.get_by_role("heading", name="Whole record export")).to_be_visible()
    expect(page.locator("#export-status")).to_contain_text("Queued")
    export = RecordExport.objects.get()
    assert [m["args"] for m in inference_queue.drain("exports")] == [[export.pk]]  # to the exports worker

    services.record_export_build(export_id=export.pk)  # as the worker does

    expect(page.locator("#export-status")).to_contain_text("Ready", timeout=20_000)
    expect(page.locator("#export-status")).to_contain_text("1 scan")
    page.set_viewport_size(TABLET)
    assert fits_without_horizontal_scrolling(page)
    screenshot(page, "record-export-ready")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the record (ZIP)").click()
    saved = tmp_path / "record.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None and f"scans/{scan.pk}/report.pdf" in archive.namelist()
    assert PatientAccess.objects.filter(patient=patient, what="export", channel="web").count() == 1

    page.goto(f"/patients/{patient.pk}/")
    page.locator("#export summary").click()
    expect(page.locator("#record-exports")).to_contain_text("by boss: ready")
