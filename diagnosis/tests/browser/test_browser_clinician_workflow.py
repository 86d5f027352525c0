"""A clinician in a real browser: log in, register a patient, upload real CT slices, watch the diagnosis
arrive without reloading, use the viewer and the heat map, correct the label, download the report,
and find the worklist in triage order. The server is live, the worker is a real Celery process with
the shipped model."""

from __future__ import annotations

import base64
import datetime
import io
import re

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import expect
from pypdf import PdfReader

from diagnosis import selectors, services
from diagnosis.models import Prediction, Review, Scan
from mlcore.images import load_image
from mlcore.dicom import DEFAULT_CT_WINDOW
from mlcore.synthetic import dicom_bytes

from ..factories import (
    PASSWORD,
    DonePredictionFactory,
    MembershipFactory,
    PatientFactory,
    PredictionFactory,
    ReviewFactory,
    ScanFactory,
    done_probabilities,
)
from .conftest import LAPTOP, RESULT_TIMEOUT_MS, TABLET, fits_without_horizontal_scrolling, log_in

pytestmark = pytest.mark.integration

# What a browser does when a file is dropped: a DataTransfer holding the file, dragenter then drop.
DROP_FILE = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
  const zone = document.getElementById("dropzone");
  zone.dispatchEvent(new DragEvent("dragenter", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""
LISTED = re.compile(r"^(Needs review · AI: )?(Cyst|Normal|Stone|Tumor) \d+%$")
LIVE_TIMEOUT_MS = 20_000  # the worklist asks again every 5 s
DIAGNOSED = re.compile(r"^(Diagnosed: |Needs review · AI: )\w+ \(\d+%\)$")


@pytest.fixture
def clinician(organization):
    return MembershipFactory(organization=organization, user__username="carol").user


@pytest.fixture
def active_shipped_model(transactional_db, shipped_model):
    return services.model_version_register(path=shipped_model, activate=True)


def real_slice(ct_slice, label: str):
    found = sorted((ct_slice.parent.parent / label).glob("*.jpg"))
    if not found:
        pytest.skip(f"no {label} slices in {ct_slice.parent.parent}")
    return found[0]


def test_diagnose_watch_explain_correct_and_report_a_real_slice(
    page, live_server, start_worker, active_shipped_model, ct_slice, clinician, tmp_path, screenshot
):
    log_in(page, "carol", PASSWORD)
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()

    # A new patient, through the form.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New patient").click()
    page.get_by_label("MRN").fill("BT-0001")
    page.get_by_label("Name", exact=True).fill("Bruno Browser")
    page.get_by_label("Birth date").fill("1961-04-12")
    page.get_by_label("Sex").select_option("M")
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_role("heading", name="Bruno Browser")).to_be_visible()

    # Upload a real slice with the file picker; no worker runs yet, so the diagnosis stays queued.
    page.set_input_files("#id_image", str(ct_slice))
    uploaded = page.locator("#upload-list li").first
    expect(uploaded).to_contain_text("Uploaded; diagnosing…")
    scan = Scan.objects.get(patient__mrn="BT-0001")
    assert scan.original_filename == ct_slice.name
    uploaded.get_by_role("link").click()
    page.wait_for_url(f"**/scans/{scan.pk}/")
    expect(page.locator('[data-field="status"]')).to_have_text("Queued")
    page.evaluate("window.__sameDocument = true")

    # The worker starts; the page changes to the result by itself.
    process, log_path = start_worker()
    try:
        expect(page.locator('[data-field="status"]')).to_have_text("Done", timeout=RESULT_TIMEOUT_MS)
    except AssertionError:
        pytest.fail(f"no result on the page; worker log:\n{log_path.read_text()[-4000:]}")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating itself"
    prediction = Prediction.objects.get(scan=scan)
    verdict = selectors.prediction_uncertainty(prediction)
    expect(page.locator('[data-field="label"]')).to_have_text(prediction.label)
    expect(page.locator(".probabilities li")).to_have_count(len(prediction.probabilities))
    if verdict.needs_review:
        expect(page.locator(".needs-review")).to_be_visible()
        expect(page.locator('[data-field="label_prefix"]')).to_have_text("AI suggestion (uncertain):")
    else:
        expect(page.locator(".needs-review")).to_be_hidden()
        expect(page.locator('[data-field="label_prefix"]')).to_have_text("Most likely:")

    # The heat map lies over the slice; it can be hidden, faded and drawn for another class.
    overlay = page.locator("#overlay")
    expect(overlay).to_be_visible()
    page.wait_for_function("() => { const o = document.getElementById('overlay'); return o.complete && o.naturalWidth > 0; }")
    assert page.evaluate("document.getElementById('overlay').naturalWidth") == scan.width
    page.get_by_role("checkbox", name="Heat map").uncheck()
    expect(overlay).to_be_hidden()
    page.get_by_role("checkbox", name="Heat map").check()
    expect(overlay).to_be_visible()
    page.locator("#heatmap-opacity").fill("30")
    assert page.evaluate("document.getElementById('overlay').style.opacity") == "0.3"
    other = next(name for name in active_shipped_model.class_names if name != prediction.label)
    page.get_by_label("Where the model looked for").select_option(other)
    expect(page.locator("#heatmap-status")).to_have_text(
        f"Showing where the model looked for {other}.", timeout=RESULT_TIMEOUT_MS
    )
    expect(overlay).to_be_visible()
    screenshot(page, "scan-1280")

    # Zoom with a button and the keyboard; window/level with the sliders.
    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#zoom-level")).to_have_text("125%")
    page.locator("#viewport").focus()
    page.keyboard.press("+")
    expect(page.locator("#zoom-level")).to_have_text("156%")
    page.keyboard.press("0")
    expect(page.locator("#zoom-level")).to_have_text("100%")
    page.locator("#brightness").fill("150")
    page.locator("#contrast").fill("200")
    assert page.evaluate("document.getElementById('slice').style.filter") == "brightness(150%) contrast(200%)"

    # Correct the AI label, with a comment.
    truth = next(name for name in active_shipped_model.class_names if name not in (prediction.label, other))
    page.get_by_role("radio", name=truth, exact=True).check()
    expect(page.locator("#review-submit")).to_have_text(f"Correct to {truth}")
    page.get_by_label("Comment (optional)").fill("Checked against the neighbouring slices.")
    page.locator("#review-submit").click()
    expect(page.locator("#current-review")).to_contain_text(f"corrected the AI label {prediction.label} to {truth}")
    review = Review.objects.get(scan=scan)
    assert (review.label, review.agrees_with_ai, review.reviewed_by.username) == (truth, False, "carol")
    expect(page.locator('[data-field="label"]')).to_have_text(prediction.label)  # the AI result stays

    # The PDF report.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF report").click()
    pdf = (tmp_path / "report.pdf")
    download.value.save_as(pdf)
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert "Bruno Browser" in text and f"{truth} (corrects the AI ({prediction.label}))" in text
    assert active_shipped_model.name in text and "Decision support, not a diagnosis" in text

    # Reviewed, the scan leaves the worklist.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist").click()
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
    expect(page.locator(f'tr[data-scan="{scan.pk}"]')).to_have_count(0)

    page.set_viewport_size(TABLET)
    page.goto(f"/scans/{scan.pk}/")
    assert fits_without_horizontal_scrolling(page)
    screenshot(page, "scan-768")


def test_a_slice_chosen_while_the_upload_script_still_loads_is_uploaded_when_it_arrives(
    page, live_server, active_shipped_model, ct_slice, clinician, organization
):
    """On a slow link the file picker works before the page's script has run; the script hides the
    plain form's button, so it must send what was chosen before it arrived."""
    patient = PatientFactory(organization=organization, name="Sven Slowlink")
    log_in(page, "carol", PASSWORD)
    held = []
    page.route("**/js/batch_upload*.js", lambda route: held.append(route))
    page.goto(f"/patients/{patient.pk}/", wait_until="commit")
    page.wait_for_selector("#id_image", state="attached")
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page never asked for its upload script"
    page.set_input_files("#id_image", str(ct_slice))
    rows = page.locator("#upload-list li")
    expect(rows).to_have_count(0)

    held[0].continue_()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Uploaded; diagnosing…")
    assert list(Scan.objects.filter(patient=patient).values_list("original_filename", flat=True)) == [ct_slice.name]
    # The upload is announced to the "To review" list too, whose script runs after this one.
    expect(page.locator("#unreviewed-scans > li.scan-item")).to_have_count(1)
    expect(page.locator("#unreviewed-count")).to_have_text("(1)")


def test_batch_upload_reports_each_file_and_the_worklist_is_in_triage_order(
    page, live_server, start_worker, active_shipped_model, ct_slice, clinician, organization, screenshot, tmp_path
):
    _, log_path = start_worker()
    patient = PatientFactory(organization=organization, name="Berta Batch")
    log_in(page, "carol", PASSWORD)
    page.goto(f"/patients/{patient.pk}/")

    # Two real slices and one text file with an image's name, chosen in one go.
    impostor = tmp_path / "not-a-slice.png"
    impostor.write_bytes(b"just some text")
    page.set_input_files("#id_image", [str(real_slice(ct_slice, "Tumor")), str(impostor), str(real_slice(ct_slice, "Normal"))])
    rows = page.locator("#upload-list li")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("Refused: The file is not a PNG, JPEG or DICOM image")
    expect(rows.nth(1).locator(".upload-status")).to_have_attribute("role", "alert")
    # One more, dragged from the desktop and dropped on the drop zone.
    dropped = real_slice(ct_slice, "Cyst")
    page.evaluate(DROP_FILE, [dropped.name, base64.b64encode(dropped.read_bytes()).decode()])
    expect(rows).to_have_count(4)
    try:
        for index in (0, 2, 3):
            expect(rows.nth(index).locator(".upload-status")).to_have_text(DIAGNOSED, timeout=RESULT_TIMEOUT_MS)
    except AssertionError as exc:
        pytest.fail(f"{exc}\nrows: {rows.all_inner_texts()}\nworker log:\n{log_path.read_text()[-4000:]}")
    assert sorted(Scan.objects.filter(patient=patient).values_list("original_filename", flat=True)) == sorted(
        [real_slice(ct_slice, "Tumor").name, real_slice(ct_slice, "Normal").name, dropped.name]
    )
    # Without a reload, the three scans joined "To review", and each shows its diagnosis there too.
    to_review = page.locator("#unreviewed-scans > li.scan-item")
    expect(to_review).to_have_count(3)
    expect(page.locator("#unreviewed-count")).to_have_text("(3)")
    expect(page.locator("#unreviewed-empty")).to_be_hidden()
    expect(page.locator('#unreviewed-scans > li[data-final="true"]')).to_have_count(3, timeout=RESULT_TIMEOUT_MS)
    for badge in page.locator("#unreviewed-scans .badges .badge:first-child").all_inner_texts():
        assert LISTED.match(badge), badge
    screenshot(page, "batch-upload-1280")

    # More waiting results with known labels and ages, then the worklist.
    now = timezone.now()
    waiting = {}
    for label, hours, top in [("Normal", 50, 0.95), ("Tumor", 1, 0.9), ("Stone", 30, 0.92), ("Cyst", 3, 0.5), ("Stone", 2, 0.9)]:
        scan = ScanFactory(patient=patient, uploaded_at=now - datetime.timedelta(hours=hours))
        DonePredictionFactory(scan=scan, model_version=active_shipped_model, label=label, top=top)
        waiting.setdefault(label, scan)
    # One still being diagnosed when the worklist opens (no task is queued for it: the test finishes it).
    pending = ScanFactory(patient=patient, uploaded_at=now - datetime.timedelta(minutes=1))
    queued = PredictionFactory(scan=pending, model_version=active_shipped_model)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist").click()
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()

    shown = [int(pk) for pk in page.locator("tr[data-scan]").evaluate_all("rows => rows.map(r => r.dataset.scan)")]
    expected = expected_triage_order(patient)
    assert shown == expected, f"the worklist is not in triage order: {describe(shown)} != {describe(expected)}"
    screenshot(page, "worklist-1280")

    # While the worklist is open, the pending row turns into its result in place, and a scan that arrives
    # or that a colleague reviews is announced instead of moving rows under the pointer.
    pending_row = page.locator(f'tr[data-scan="{pending.pk}"]')
    expect(pending_row).to_have_attribute("data-final", "false")
    Prediction.objects.filter(pk=queued.pk).update(
        status=Prediction.Status.DONE, label="Tumor", probabilities=done_probabilities("Tumor", 0.9), confidence=0.9,
        started_at=timezone.now(), finished_at=timezone.now())
    expect(pending_row).to_have_attribute("data-final", "true", timeout=LIVE_TIMEOUT_MS)
    expect(pending_row).to_contain_text("Tumor 90%")
    DonePredictionFactory(scan=ScanFactory(patient=patient), model_version=active_shipped_model, label="Normal")
    ReviewFactory(prediction=waiting["Normal"].latest_prediction)
    news = page.locator("#worklist-news")
    expect(news).to_contain_text("1 new scan is waiting", timeout=LIVE_TIMEOUT_MS)
    expect(news).to_contain_text("1 scan was reviewed or moved")
    expect(page.locator(f'tr[data-scan="{waiting["Normal"].pk}"]')).to_have_class(re.compile("worklist-row-gone"))
    assert [int(pk) for pk in page.locator("tr[data-scan]").evaluate_all("rows => rows.map(r => r.dataset.scan)")] == shown
    screenshot(page, "worklist-live-1280")
    news.get_by_role("link", name="Refresh the list").click()
    expect(page.locator("tr[data-scan]")).to_have_count(len(shown))  # one reviewed, one new
    page.get_by_label("AI label").select_option("Stone")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/?*label=Stone*")
    expect(page.locator("tr[data-scan]")).to_have_count(
        Scan.objects.filter(patient=patient, predictions__label="Stone", predictions__status="done").count()
    )

    page.set_viewport_size(TABLET)
    for url in ("/", f"/patients/{patient.pk}/"):
        page.goto(url)
        assert fits_without_horizontal_scrolling(page), url
    screenshot(page, "patient-768")
    page.goto("/")
    screenshot(page, "worklist-768")
    page.set_viewport_size(LAPTOP)


def expected_triage_order(patient) -> list[int]:
    """Worked out here in Python, independently of the database ordering the page uses."""
    rank = {"Tumor": 1, "Stone": 2, "Cyst": 3, "Normal": 4}

    def key(scan: Scan):
        prediction = scan.predictions.order_by("-queued_at", "-id").first()
        if selectors.prediction_uncertainty(prediction).needs_review:
            urgency = 0
        elif prediction.status != Prediction.Status.DONE:
            urgency = 6
        else:
            urgency = rank.get(prediction.label, 5)
        return (urgency, scan.uploaded_at, scan.pk)

    return [scan.pk for scan in sorted(Scan.objects.filter(patient=patient, reviews__isnull=True), key=key)]


def describe(scan_ids: list[int]) -> list[str]:
    """Each scan as id:status:label:confidence:uploaded, to explain an ordering failure."""
    out = []
    for pk in scan_ids:
        scan = Scan.objects.get(pk=pk)
        p = scan.predictions.order_by("-queued_at", "-id").first()
        out.append(f"{pk}:{p.status}:{p.label}:{p.confidence}:{scan.uploaded_at:%H:%M:%S.%f}")
    return out


def test_a_scanners_dicom_slice_is_diagnosed_like_its_exported_image(
    page, live_server, start_worker, active_shipped_model, ct_slice, clinician, organization, tmp_path
):
    """The same real slice twice: as the data set's JPEG, and as a 512 px DICOM in Hounsfield units."""
    _, log_path = start_worker()
    patient = PatientFactory(organization=organization, name="Dora Dicom")
    grey = np.kron(load_image(ct_slice)[..., 0].astype(float), np.ones((2, 2)))
    centre, width = DEFAULT_CT_WINDOW
    dicom = tmp_path / "IM0001.dcm"
    dicom.write_bytes(dicom_bytes(np.round(grey / 255 * width + centre - width / 2 + 1024).astype(np.uint16),
                                  patient_id=patient.mrn))
    log_in(page, "carol", PASSWORD)
    page.goto(f"/patients/{patient.pk}/")

    page.set_input_files("#id_image", [str(ct_slice), str(dicom)])
    rows = page.locator("#upload-list li .upload-status")
    expect(rows).to_have_count(2)
    try:
        for index in (0, 1):
            expect(rows.nth(index)).to_have_text(DIAGNOSED, timeout=RESULT_TIMEOUT_MS)
    except AssertionError as exc:
        pytest.fail(f"{exc}\nrows: {rows.all_inner_texts()}\nworker log:\n{log_path.read_text()[-4000:]}")
    exported, scanned = (re.search(r"(Cyst|Normal|Stone|Tumor)", text).group(1) for text in rows.all_inner_texts())
    assert scanned == exported
    scan = Scan.objects.get(patient=patient, original_filename="IM0001.dcm")
    assert (scan.format, scan.width, scan.height) == ("PNG", 512, 512)
    # The clinician sees the slice itself on the scan page: the stored PNG loads in the browser.
    page.goto(f"/scans/{scan.pk}/")
    expect(page.locator("#slice")).to_be_visible()
    page.wait_for_function("() => document.getElementById('slice').complete")
    assert page.locator("#slice").evaluate("img => img.naturalWidth") == 512
