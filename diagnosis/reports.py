"""The PDF report of one scan: patient, slice with the heat map, AI result, review, and the notice
that this is decision support, not a diagnosis. Views only send what ``scan_report_pdf`` builds."""

from __future__ import annotations

import io
import logging

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from PIL import Image, ImageOps

from . import selectors
from .pdf_fonts import paragraph, report_fonts
from .services.withdrawals import withdrawn_message
from .models import Prediction, Review, Scan

logger = logging.getLogger(__name__)

NOTICE = (
    "Decision support, not a diagnosis. This result was produced by a machine-learning model and may be "
    "wrong. It must be read and confirmed by a qualified clinician together with the full study and the "
    "patient's history before any clinical decision."
)
HEATMAP_OPACITY = 0.6
IMAGE_SIDE_PX = 512  # enough for print at the report's image size; keeps the PDF small

def _open_rgb(field) -> Image.Image | None:
    try:
        with field.open("rb") as handle:
            image = Image.open(io.BytesIO(handle.read()))
            image.load()
    except (OSError, ValueError):
        return None
    return ImageOps.exif_transpose(image)


def slice_with_heatmap(scan: Scan, prediction: Prediction | None, opacity: float = HEATMAP_OPACITY) -> tuple[bytes, bool]:
    """The slice in grey with the stored heat-map overlay composited on top, as PNG bytes; and
    whether a heat map was drawn."""
    composed, drew = slice_with_heatmap_image(scan, prediction, opacity)
    buffer = io.BytesIO()
    composed.save(buffer, format="PNG")
    return buffer.getvalue(), drew


def slice_with_heatmap_image(scan: Scan, prediction: Prediction | None,
                             opacity: float = HEATMAP_OPACITY) -> tuple[Image.Image, bool]:
    """``slice_with_heatmap`` as an RGB image, at most IMAGE_SIDE_PX on a side, for callers that draw on it."""
    base = _open_rgb(scan.image)
    if base is None:
        raise OSError("The stored image of the scan could not be read.")
    grey = base.convert("L").convert("RGBA")
    drew = False
    if prediction is not None and prediction.heatmap:
        overlay = _open_rgb(prediction.heatmap)
        if overlay is not None:
            overlay = overlay.convert("RGBA")
            if overlay.size != grey.size:
                overlay = overlay.resize(grey.size, Image.BILINEAR)
            alpha = overlay.getchannel("A").point(lambda a: round(a * opacity))
            overlay.putalpha(alpha)
            grey = Image.alpha_composite(grey, overlay)
            drew = True
    composed = grey.convert("RGB")
    composed.thumbnail((IMAGE_SIDE_PX, IMAGE_SIDE_PX))
    return composed, drew


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "–"


def scan_report_pdf(*, scan: Scan, user: AbstractBaseUser) -> bytes:
    """Build the report of the scan as the user sees it (the caller checked the user may see it)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image as PdfImage
    from reportlab.platypus import SimpleDocTemplate, Spacer, Table, TableStyle

    fonts = report_fonts()
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontName=fonts.regular, fontSize=9.5, leading=12)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#5b6776"))
    heading = ParagraphStyle("heading", parent=styles["Heading2"], fontName=fonts.bold, fontSize=12, spaceBefore=8, spaceAfter=4)
    title = ParagraphStyle("title", parent=styles["Title"], fontName=fonts.bold, fontSize=16, alignment=0, spaceAfter=4)
    notice = ParagraphStyle(
        "notice", parent=body, fontName=fonts.bold, textColor=colors.HexColor("#7a1f16"),
        backColor=colors.HexColor("#fdecea"), borderColor=colors.HexColor("#b3261e"), borderWidth=1,
        borderPadding=6, spaceBefore=4, spaceAfter=10,
    )

    def p(text: str, style=body):
        return paragraph(str(text), style, fonts)

    def facts(rows: list[tuple[str, str]], label_width: float = 38 * mm) -> Table:
        table = Table([[p(k, small), p(v)] for k, v in rows], colWidths=[label_width, None], hAlign="LEFT")
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                                   ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        return table

    def side_by_side(left: list, right: list, left_width: float) -> Table:
        table = Table([[left, right]], colWidths=[left_width, None], hAlign="LEFT")
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                                   ("RIGHTPADDING", (0, 0), (0, -1), 6 * mm)]))
        return table

    patient = scan.patient
    prediction = scan.latest_prediction
    review: Review | None = scan.current_review
    story: list = [
        p("Kidney CT slice: AI decision-support report", title),
        p(f"{patient.organization.name} · generated {_when(timezone.now())} by {user.get_username()}", small),
        p(NOTICE, notice),
        *([p(f"WITHDRAWN, ENTERED IN ERROR. {withdrawn_message(scan)}. Not for clinical use.", notice)]
          if scan.is_withdrawn else []),
        side_by_side(
            [p("Patient", heading), facts([
                ("Name", patient.name), ("MRN", patient.mrn), ("Birth date", patient.birth_date.isoformat()),
                ("Sex", patient.get_sex_display()),
            ], label_width=22 * mm)],
            [p("Scan", heading), facts([
                ("Scan", f"#{scan.pk}, {scan.width}×{scan.height} {scan.format}"),
                ("File", scan.original_filename or "(no file name)"),
                ("Uploaded", f"{_when(scan.uploaded_at)} by {scan.uploaded_by.get_username()}"),
                ("SHA-256", f"{scan.sha256[:32]} {scan.sha256[32:]}"),
                # Where the slice is in the archive, for a reader who wants the study around it.
                *([("Accession", scan.dicom_accession_number)] if scan.dicom_accession_number else []),
                *([("DICOM study", scan.dicom_study_uid)] if scan.dicom_study_uid else []),
                *([("Study", " ".join(filter(None, [
                    scan.dicom_study_date.isoformat() if scan.dicom_study_date else "",
                    scan.dicom_study_time.strftime("%H:%M") if scan.dicom_study_time else "",
                    scan.dicom_study_description])))] if scan.dicom_study_date or scan.dicom_study_description else []),
                *[("Withdrawn", f"{_when(entry.withdrawn_at)} by {entry.withdrawn_by.get_username()}: {entry.reason}; "
                                f"restored {_when(entry.restored_at)} by {entry.restored_by.get_username()}: "
                                f"{entry.restore_reason}")
                  for entry in selectors.scan_withdrawals(scan=scan) if entry.restored_at],
                # Scan numbers only: this report travels with one patient's record, and the other is someone else.
                *([("Filed from", f"scan #{scan.refiled_from_id}, withdrawn from another patient's record")]
                  if scan.refiled_from_id else []),
                *[("Filed as", f"scan #{copy.pk} of another patient{' (withdrawn too)' if copy.is_withdrawn else ''}")
                  for copy in selectors.scan_refilings(scan=scan)],
            ], label_width=22 * mm)],
            left_width=78 * mm,
        ),
        Spacer(1, 6),
    ]

    picture_column: list = []
    try:
        picture, drew = slice_with_heatmap(scan, prediction)
        side = 74 * mm
        ratio = scan.height / scan.width if scan.width else 1
        width, height = (side, side * ratio) if ratio <= 1 else (side / ratio, side)
        picture_column.append(PdfImage(io.BytesIO(picture), width=width, height=height, hAlign="LEFT"))
        caption = (
            f"Heat map (Grad-CAM) of where the model looked for “{prediction.label}”, overlaid on the slice. "
            "It shows what drove the model, not the extent of a lesion."
            if drew else "No heat map is available for this result; the slice is shown alone."
        )
        picture_column += [Spacer(1, 2), p(caption, small)]
    except OSError as exc:
        logger.warning("Report of scan %s without its image: %s", scan.pk, exc)
        picture_column.append(p(f"The slice could not be included: {exc}", body))

    result_column: list = [p("AI result", heading)]
    failure = ""
    if prediction is None:
        result_column.append(p("No diagnosis has been requested for this scan."))
    else:
        verdict = selectors.prediction_uncertainty(prediction)
        rows = [("Status", prediction.get_status_display())]
        if prediction.status == Prediction.Status.DONE:
            if verdict.needs_review:
                rows.append(("AI suggestion", f"{prediction.label}, NEEDS REVIEW: {verdict.reason}"))
            else:
                rows.append(("Most likely", prediction.label))
            tested = selectors.label_reliability_text(model_version=prediction.model_version, label=prediction.label)
            if tested:
                rows.append((f"{prediction.label} in testing", tested))
        elif prediction.status == Prediction.Status.FAILED:
            # The reason goes below the picture and result, which sit in one table row that cannot break
            # across pages; a worker's reason can be long (up to 2,000 characters).
            failure = prediction.failure_reason or "No reason was recorded."
            rows.append(("Failure", "no AI result; the reason is below"))
        rows += [
            ("Model version", f"{prediction.model_version.name} (SHA-256 {prediction.model_version.sha256[:12]}…)"),
            ("Confidence threshold", f"{verdict.threshold:.0%}"),
            ("Queued", _when(prediction.queued_at)),
            ("Finished", _when(prediction.finished_at)),
        ]
        result_column.append(facts(rows, label_width=30 * mm))
        if prediction.probabilities:
            result_column += [Spacer(1, 4), _probability_table(prediction, fonts, mm, colors, Table, TableStyle, p, small)]
    story.append(side_by_side(picture_column, result_column, left_width=80 * mm))
    if failure:
        story += [Spacer(1, 3), p("Why the diagnosis failed", small), p(failure)]

    story.append(p("Clinician review", heading))
    if review is None:
        story.append(p("Not reviewed yet. Until a clinician reviews it, this result is unconfirmed."))
    else:
        verdict_text = {True: "agrees with the AI", False: f"corrects the AI ({review.prediction.label})",
                        None: "read without an AI result: the diagnosis failed"}[review.agrees_with_ai]
        story.append(facts([
            ("Reviewed label", f"{review.label} ({verdict_text})"),
            ("Reviewed by", review.reviewed_by.get_username()),
            ("Reviewed", _when(review.reviewed_at)),
        ]))
        # Below the table, not in a row of it: a table row cannot break across pages, a paragraph can.
        story += [Spacer(1, 3), p("Comment", small), p(review.comment or "–")]

    story += [Spacer(1, 10), p(NOTICE, small)]

    buffer = io.BytesIO()

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(fonts.regular, 7.5)
        canvas.setFillColor(colors.HexColor("#5b6776"))
        canvas.drawString(18 * mm, 10 * mm, f"kidneyweb · scan #{scan.pk} · decision support, not a diagnosis")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    document = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=18 * mm,
        title=f"Scan {scan.pk} report", author="kidneyweb", subject="AI decision-support report",
    )
    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _probability_table(prediction, fonts, mm, colors, Table, TableStyle, p, small):
    """Every class probability as a number and a bar, highest first."""
    from reportlab.graphics.shapes import Drawing, Rect

    rows = sorted(prediction.probabilities.items(), key=lambda item: (-float(item[1]), item[0]))
    bar_width = 48 * mm
    data = []
    for name, value in rows:
        drawing = Drawing(bar_width, 8)
        drawing.add(Rect(0, 1, bar_width, 6, fillColor=colors.HexColor("#e6eaef"), strokeColor=None))
        drawing.add(Rect(0, 1, bar_width * float(value), 6, fillColor=colors.HexColor("#1f5fa8"), strokeColor=None))
        data.append([p(name), drawing, p(f"{float(value) * 100:.1f}%")])
    table = Table(data, colWidths=[20 * mm, bar_width + 4 * mm, 16 * mm], hAlign="LEFT")
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    return table
