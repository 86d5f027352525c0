"""The archive (PACS) in a real browser: an administrator sets it up on the Members page; a real worker diagnoses a
DICOM slice and stores its result in a real Orthanc; the scan page and the Members page say it is stored; withdrawn,
the scan's result is rejected there by a note the worker sends."""

from __future__ import annotations

import time

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from playwright.sync_api import expect

from diagnosis import services
from diagnosis.models import Membership, PacsDelivery
from mlcore.synthetic import dicom_bytes

from .. import orthanc as pacs
from ..celery_worker import celery_worker
from ..factories import PASSWORD, MembershipFactory, PatientFactory
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_an_administrator_sets_up_the_archive_and_a_diagnosed_dicom_slice_is_stored_there(
        page, organization, orthanc, ct_slice, shipped_model, inference_queue, tmp_path, settings, screenshot):
    settings.KIDNEYWEB_PACS_ALLOW_HTTP = True  # the archive here is plain http on localhost
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    log_in(page, "boss", PASSWORD)
    page.get_by_role("link", name="Members").click()
    archive = page.get_by_role("region", name="AI results to the archive (PACS)")
    archive.get_by_label("Archive's address").fill(orthanc.dicomweb)
    archive.get_by_label("User name").fill(pacs.USERNAME)
    archive.get_by_label("Password").fill(pacs.PASSWORD)
    archive.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Each finished AI result of a DICOM slice is now sent to the archive.")).to_be_visible()
    expect(archive).to_contain_text(f"Now sent to {orthanc.dicomweb} as {pacs.USERNAME}.")
    expect(archive.get_by_label("Password")).to_have_value("")  # never shown again

    patient = PatientFactory(organization=organization, mrn="PACS-0002")
    pixels = np.asarray(Image.open(ct_slice).convert("L"), dtype=np.uint8)
    data = dicom_bytes(pixels, patient_id=patient.mrn, window=None, intercept=0.0)
    services.model_version_register(path=shipped_model, activate=True)
    log_path = tmp_path / "worker.log"
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", data), uploaded_by=boss)
    page.goto(f"{page.url.split('/staff/')[0]}/scans/{scan.pk}/")
    expect(page.locator("#pacs-status")).to_be_hidden()  # nothing sent before the diagnosis
    # Results go to the archive from the "celery" queue, beside the diagnoses' "inference".
    with celery_worker(shipped_model, log_path, queues="inference,celery") as process:
        def sent(deliveries) -> PacsDelivery:
            deadline = time.monotonic() + 120
            while not deliveries.exclude(status="pending").exists():
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-5000:]
                time.sleep(0.5)
            return deliveries.get()

        delivery = sent(PacsDelivery.objects.filter(scan=scan))
        assert delivery.status == PacsDelivery.Status.DELIVERED, delivery.last_error
        assert orthanc.instance_tags(delivery.sop_instance_uid)["PatientID"] == "PACS-0002"
        # The page open since the upload says so without a reload.
        expect(page.locator("#pacs-status")).to_contain_text(
            "The AI result is stored in the archive (PACS) beside the study", timeout=15_000)
        page.get_by_role("link", name="Members").click()
        row = page.locator("#pacs-deliveries tbody tr", has_text=f"scan #{scan.pk}")
        expect(row).to_contain_text("Stored")
        expect(row).to_contain_text(delivery.sop_instance_uid)
        screenshot(page, "members-archive")
        page.set_viewport_size(TABLET)
        assert fits_without_horizontal_scrolling(page)

        # Uploaded for the wrong patient after all: withdrawn, the archive is asked to hide the result it holds.
        page.goto(f"{page.url.split('/staff/')[0]}/scans/{scan.pk}/")
        page.get_by_text("Withdraw this scan (entered in error)").click()
        page.get_by_label("Why").fill("uploaded for the wrong patient")
        page.get_by_role("button", name="Withdraw").click()
        expect(page.locator("#withdrawn")).to_contain_text("withdrawn as entered in error by boss")
        note = sent(PacsDelivery.objects.filter(scan=scan, kind=PacsDelivery.Kind.REJECTION))
    assert note.status == PacsDelivery.Status.DELIVERED, note.last_error
    stored_note = orthanc.instance_tags(note.sop_instance_uid)
    assert stored_note["Modality"] == "KO" and stored_note["ConceptNameCodeSequence"][0]["CodeValue"] == "113037"
    # The page shown after the withdrawal follows the note to the archive without a reload.
    expect(page.locator("#pacs-rejection")).to_contain_text(
        "holds a rejection note for the 1 AI result it was sent of this withdrawn scan", timeout=15_000)
