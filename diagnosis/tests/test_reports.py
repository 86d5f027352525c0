"""The PDF report of a scan says what the AI found, what the reviewer decided, and that it is not a diagnosis."""

import datetime
import io
import re

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image
from pypdf import PdfReader

from diagnosis import pdf_fonts, reports, selectors

from .factories import DonePredictionFactory, ModelVersionFactory, PatientFactory, ReviewFactory, ScanFactory, image_bytes


def overlay_png(size=(64, 48)) -> bytes:
    rgba = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    rgba[10:20, 10:20] = (255, 0, 0, 200)  # one hot red square, transparent elsewhere
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def text_of(pdf: bytes) -> str:
    return " ".join(" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def reviewed_scan(organization, clinician):
    patient = PatientFactory(organization=organization, name="Zoë Ångström", mrn="MRN-4711")
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    version = ModelVersionFactory(name="kidney-resnet-v1", card={"calibration": {"confidence_threshold": 0.7}})
    prediction = DonePredictionFactory(scan=scan, model_version=version, label="Stone", top=0.91)
    prediction.heatmap.save("h.png", ContentFile(overlay_png()))
    ReviewFactory(prediction=prediction, label="Tumor", reviewed_by=clinician, comment="Enhancing mass, see CT series 3")
    return selectors.scan_get(user=clinician, pk=scan.pk)


def test_the_report_holds_patient_ai_result_model_review_and_the_notice(reviewed_scan, clinician):
    pdf = reports.scan_report_pdf(scan=reviewed_scan, user=clinician)

    assert pdf.startswith(b"%PDF-")
    text = text_of(pdf)
    for expected in [
        "Zoë Ångström", "MRN-4711", "Most likely Stone", "91.0%", "kidney-resnet-v1", "Tumor (corrects the AI (Stone))",
        "Reviewed by alice", "Enhancing mass, see CT series 3", "Decision support, not a diagnosis",
    ]:
        assert expected in text, expected


def test_a_dicom_slices_report_names_its_order_and_study_in_the_archive(reviewed_scan, clinician):
    plain = text_of(reports.scan_report_pdf(scan=reviewed_scan, user=clinician))
    reviewed_scan.dicom_study_uid, reviewed_scan.dicom_accession_number = "1.2.826.0.1.3680043.8.498.7", "A-7"
    reviewed_scan.dicom_study_date, reviewed_scan.dicom_study_description = datetime.date(2026, 12, 5), "CT KUB"

    text = text_of(reports.scan_report_pdf(scan=reviewed_scan, user=clinician))

    assert "Accession A-7" in text and "DICOM study 1.2.826.0.1.3680043.8.498.7" in text
    assert "Study 2026-12-05 CT KUB" in text
    assert "DICOM study" not in plain and "Accession" not in plain and "CT KUB" not in plain


# The longest comment a review accepts, as one unbroken word of wide letters, as prose, and in a script the
# report's font has no glyphs for, and in Arabic (only their length is checked: they must not break the report).
@pytest.mark.parametrize("comment, token, count", [("W" * 4000, "W", 4000),
                                                   (("Cyst in the lower pole. " * 170)[:4000], "lowerpole", 166),
                                                   ("腎" * 4000, None, None),
                                                   (("حصوة في الكلية " * 300)[:4000], None, None),
                                                   ("ع" * 4000, None, None)])
def test_a_review_comment_of_the_longest_allowed_length_flows_onto_further_pages(organization, clinician, comment,
                                                                                 token, count):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    ReviewFactory(prediction=DonePredictionFactory(scan=scan), reviewed_by=clinician, comment=comment)

    pdf = reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=scan.pk), user=clinician)

    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    assert pages >= 2
    text = text_of(pdf)
    assert "Decision support, not a diagnosis" in text
    if token:
        # At least: the patient's generated name may hold the letter too. Each page break may fall inside one
        # occurrence (the next page's header then stands between its words), and where one falls depends on how
        # long the generated name and the other lines above the comment are.
        assert text.replace(" ", "").count(token) >= count - (pages - 1)


def test_a_failed_diagnosis_with_the_longest_stored_reason_is_reported_with_it(organization, clinician):
    from diagnosis.models import Prediction
    from diagnosis.services import MAX_FAILURE_REASON

    from .factories import PredictionFactory

    scan = ScanFactory(patient=PatientFactory(organization=organization))
    reason = ("The model could not read this slice because the worker ran out of memory. " * 40)[:MAX_FAILURE_REASON]
    PredictionFactory(scan=scan, status=Prediction.Status.FAILED, failure_reason=reason)

    text = text_of(reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=scan.pk), user=clinician))

    assert "Why the diagnosis failed" in text and "Decision support, not a diagnosis" in text
    assert "Not reviewed yet" in text
    assert text.replace(" ", "").count("ranoutofmemory") >= MAX_FAILURE_REASON // 77


def test_an_uncertain_result_is_marked_needs_review_not_stated_as_a_diagnosis(organization, clinician):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan, label="Normal", top=0.55)

    text = text_of(reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=scan.pk), user=clinician))

    assert "NEEDS REVIEW" in text and "Most likely" not in text
    assert "Not reviewed yet" in text


def test_the_result_says_how_often_the_models_labels_of_its_class_were_right_in_testing(organization, clinician):
    per_class = {name: {"recall": 0.9, "precision": 0.9, "support": 50} for name in ("Cyst", "Normal", "Tumor")}
    per_class["Stone"] = {"recall": 0.77, "precision": 0.47, "support": 56}
    version = ModelVersionFactory(card={"metrics": {"test_series_split": {"series": 52, "per_class": per_class}}})
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan, label="Stone", top=0.95, model_version=version)

    text = text_of(reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=scan.pk), user=clinician))

    assert "Stone in testing" in text
    assert "47% of the model's Stone labels were right; it labelled 77% of Stone slices so" in text


def test_the_slice_is_composited_with_the_heat_map_where_it_is_hot(reviewed_scan):
    png, drew = reports.slice_with_heatmap(reviewed_scan, reviewed_scan.latest_prediction)

    with Image.open(io.BytesIO(png)) as picture:
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    assert drew
    hot, cold = pixels[15, 15], pixels[40, 40]
    assert hot[0] > hot[1] + 60  # red over the slice where the map is hot
    assert abs(cold[0] - cold[1]) <= 1 and abs(cold[1] - cold[2]) <= 1  # plain grey slice elsewhere


def test_without_a_heat_map_the_slice_is_shown_alone(organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization), image=ContentFile(image_bytes("PNG", (64, 48)), name="x"))

    png, drew = reports.slice_with_heatmap(scan, DonePredictionFactory(scan=scan))

    assert not drew
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.size == (64, 48)


def test_a_reading_of_a_failed_diagnosis_is_reported_as_made_without_an_ai_result(organization, clinician):
    from diagnosis.models import Prediction

    from .factories import PredictionFactory

    scan = ScanFactory(patient=PatientFactory(organization=organization))
    failed = PredictionFactory(scan=scan, status=Prediction.Status.FAILED, failure_reason="Out of memory")
    ReviewFactory(prediction=failed, label="Tumor", reviewed_by=clinician)

    text = text_of(reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=scan.pk), user=clinician))

    assert "Tumor (read without an AI result: the diagnosis failed)" in text


def fonts_of(pdf: bytes) -> set[str]:
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            names.add(str(font.get_object()["/BaseFont"]))
    return names


def test_chinese_japanese_and_korean_names_and_comments_are_printed_in_a_font_that_has_them(organization, clinician):
    if pdf_fonts.report_fonts().cjk is None:
        pytest.skip("no CJK font installed (Debian package fonts-droid-fallback; CI and the image install it)")
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="山田 太郎 / 김민준", mrn="MRN-88"))
    ReviewFactory(prediction=DonePredictionFactory(scan=scan), reviewed_by=clinician, comment="右腎に結石 Stone, 4 mm")

    pdf = reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=scan.pk), user=clinician)

    assert any("DroidSansFallback" in name for name in fonts_of(pdf))
    text = text_of(pdf)
    assert "山田 太郎 / 김민준" in text and "右腎に結石 Stone, 4 mm" in text


def script_font_or_skip(script: str) -> None:
    if pdf_fonts.report_fonts().script_face(script) is None:
        pytest.skip(f"no {script} font installed (Debian package fonts-noto-core; CI and the image install it)")


# Each name holds a vowel sign written before the consonant it follows in memory (Bengali "হি", Devanagari
# "कि", Tamil "கொ"'s first part): shaped, its glyph comes first on the page, and so in the PDF's text, as
# the sign itself or, where the font draws a variant of it, as a private-use character.
@pytest.mark.parametrize("script, name, drawn_first", [
    ("Bengali", "রহিম উদ্দিন", "[\u09bf\ue000-\uf8ff]\u09b9"),  # Rahim Uddin: ি before হ
    ("Devanagari", "किरण शर्मा", "[\u093f\ue000-\uf8ff]\u0915"),  # Kiran Sharma: ि before क
    ("Tamil", "கொடி லட்சுமி", "[\u0bc6\ue000-\uf8ff]\u0b95"),  # Kodi Lakshmi: ெ before க
])
def test_names_in_scripts_whose_letters_combine_are_shaped_in_a_font_of_their_script(organization, clinician, script,
                                                                                     name, drawn_first):
    script_font_or_skip(script)
    scan = ScanFactory(patient=PatientFactory(organization=organization, name=name, mrn="MRN-90"))
    ReviewFactory(prediction=DonePredictionFactory(scan=scan), reviewed_by=clinician, comment=f"{name}: Stone, 4 mm")

    pdf = reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=scan.pk), user=clinician)

    assert any(f"NotoSans{script}" in font for font in fonts_of(pdf))
    text = text_of(pdf)
    assert re.search(drawn_first, text)  # unshaped, the consonant would come first
    assert "Stone, 4 mm" in text and "MRN-90" in text


def test_arabic_and_hebrew_names_and_comments_print_joined_and_in_reading_order(organization, clinician):
    import arabic_reshaper

    name, comment = "محمد علي / דוד כהן", "حصوة صغيرة في الكلية اليمنى. " * 12  # no digits: pypdf misorders them
    scan = ScanFactory(patient=PatientFactory(organization=organization, name=name, mrn="MRN-91"))
    ReviewFactory(prediction=DonePredictionFactory(scan=scan), reviewed_by=clinician, comment=comment)

    pdf = reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=scan.pk), user=clinician)

    # pypdf reads right-to-left runs back into reading order: letters drawn in the order they are typed
    # would come out reversed, and letters not joined would come out as their plain forms.
    text = text_of(pdf)
    assert arabic_reshaper.reshape("محمد علي") in text and "דוד כהן" in text
    joined = arabic_reshaper.reshape(comment.strip())
    assert joined[:40] in text and joined[-40:] in text  # several lines, the first first
    assert "MRN-91" in text



def test_a_withdrawal_undone_is_on_the_report_with_both_reasons(withdrawn_scan, clinician):
    from diagnosis import services

    services.scan_restore(scan=withdrawn_scan, user=clinician, reason="withdrawn by mistake")

    text = text_of(reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=withdrawn_scan.pk), user=clinician))

    assert "WITHDRAWN" not in text
    assert "by alice: wrong patient; restored" in text and "by alice: withdrawn by mistake" in text


def test_both_reports_of_a_refiled_slice_name_the_other_scan_but_not_the_other_patient(
        withdrawn_scan, clinician, organization, active_model_version):
    from diagnosis import services

    right = PatientFactory(organization=organization, name="Right Person")
    copy = services.scan_refile(scan=withdrawn_scan, patient=right, user=clinician)

    old = text_of(reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=withdrawn_scan.pk), user=clinician))
    new = text_of(reports.scan_report_pdf(scan=selectors.scan_get(user=clinician, pk=copy.pk), user=clinician))

    assert f"Filed as scan #{copy.pk} of another patient" in old and "Right Person" not in old
    assert f"Filed from scan #{withdrawn_scan.pk}, withdrawn from another patient's record" in new
    assert withdrawn_scan.patient.name not in new and "WITHDRAWN" not in new
