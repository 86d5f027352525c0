"""The record system (HL7 v2 over MLLP) in a real browser: an administrator sets it up on the Members page; a real
worker diagnoses a real CT slice and a real MLLP listener takes its ORU^R01; the scan page open since the upload
says it was acknowledged, and a review in the page sends the final result."""

from __future__ import annotations

import time

from django.core.files import File
from playwright.sync_api import expect

from diagnosis import services
from diagnosis.models import Hl7Delivery, Membership

from .. import mllp_receiver
from ..celery_worker import celery_worker
from ..factories import PASSWORD, MembershipFactory, PatientFactory
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_an_administrator_sets_up_the_record_system_and_a_diagnosis_and_its_review_reach_it(
        page, organization, ct_slice, shipped_model, inference_queue, tmp_path, settings, screenshot):
    settings.KIDNEYWEB_HL7_ALLOW_PLAIN = True  # the listener here is plain MLLP on localhost
    listener, server = mllp_receiver.start()
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    try:
        log_in(page, "boss", PASSWORD)
        page.get_by_role("link", name="Members").click()
        section = page.get_by_role("region", name="Results to the record system (HL7 v2)")
        section.get_by_label("Record system's HL7 address").fill(listener.address)
        section.get_by_label("Receiving application (MSH-5)").fill("EPIC")
        section.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Each change of a scan's result is now sent to the record system (HL7 v2).")).to_be_visible()
        expect(section).to_contain_text(f"Now sent to {listener.address}.")

        services.model_version_register(path=shipped_model, activate=True)
        patient = PatientFactory(organization=organization, mrn="HL7-0002")
        with ct_slice.open("rb") as handle:
            scan = services.scan_create(patient=patient, file=File(handle, name=ct_slice.name), uploaded_by=boss)
        page.goto(f"{page.url.split('/staff/')[0]}/scans/{scan.pk}/")
        expect(page.locator("#hl7-status")).to_be_hidden()  # nothing sent before the diagnosis
        log_path = tmp_path / "worker.log"
        with celery_worker(shipped_model, log_path, queues="inference,celery") as process:
            def acknowledged(count: int) -> None:
                deadline = time.monotonic() + 120
                while Hl7Delivery.objects.filter(scan=scan).exclude(status="pending").count() < count:
                    assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-5000:]
                    time.sleep(0.5)

            acknowledged(1)
            # The page open since the upload says so without a reload.
            expect(page.locator("#hl7-status")).to_contain_text(
                "The record system (HL7 v2) acknowledged the result as it stands", timeout=15_000)
            label = scan.latest_prediction.label
            truth = "Cyst" if label != "Cyst" else "Stone"
            page.get_by_role("radio", name=truth, exact=True).check()
            page.locator("#review-submit").click()
            expect(page.locator("#current-review")).to_contain_text(f"corrected the AI label {label} to {truth}")
            acknowledged(2)
            expect(page.locator("#hl7-status")).to_contain_text("acknowledged the result as it stands")
        page.get_by_role("link", name="Members").click()
        row = page.locator("#hl7-deliveries tbody tr", has_text="review.saved")
        expect(row).to_contain_text("Acknowledged")
        screenshot(page, "members-record-system")
        page.set_viewport_size(TABLET)
        assert fits_without_horizontal_scrolling(page)
    finally:
        server.shutdown()
        server.server_close()

    first, reviewed = listener.received
    assert "|EPIC|" in first.split("\r")[0] and "PID|1||HL7-0002^" in first
    def obr(message: str) -> list[str]:
        return ("OBR|" + message.split("\rOBR|", 1)[1].split("\r")[0]).split("|")

    assert obr(first)[25] == "P"  # preliminary: nobody had read it
    assert (obr(reviewed)[25], obr(reviewed)[32]) == ("F", "boss")  # final, read by the administrator
