"""Clinicians' reviews of AI results, and the export that feeds reviewed scans back into training."""

from __future__ import annotations

import csv
import logging
import shutil
import tempfile
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from .. import selectors
from ..models import FORMAT_EXTENSIONS, Organization, Prediction, Review, Scan
from .hl7_feed import hl7_result_send
from .pacs import pacs_result_send
from .performance import performance_alert_refresh
from .webhooks import review_saved_notify
from .withdrawals import withdrawn_message

logger = logging.getLogger(__name__)

MAX_COMMENT_LENGTH = 4000
MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = ("path", "label", "series")


def review_create(
    *, scan: Scan, user: AbstractBaseUser, label: str, comment: str = "", prediction_id: int | None = None
) -> Review:
    """Record the user's label for the scan's latest AI result; the AI result itself stays as it was.

    ``prediction_id`` is the AI result the reviewer saw. When a newer one has arrived since (a re-run
    finished while the page was open), the review is refused: "confirm" must mean the result on screen.
    """
    membership = selectors.membership_of(user)
    if membership is None or membership.organization_id != scan.patient.organization_id:
        # Same words as a missing scan: another organization's scan must not be confirmed to exist.
        raise ValidationError({"scan": ["No such scan in your organization."]})
    label = (label or "").strip()
    # Browsers send a textarea's line breaks as CRLF but count them as one character against maxlength.
    comment = (comment or "").replace("\r\n", "\n").strip()

    with transaction.atomic():
        # The scan's row too: a withdrawal at the same moment either comes first and refuses this, or after.
        locked = Scan.objects.select_for_update(of=("self",)).select_related("withdrawn_by").get(pk=scan.pk)
        if locked.is_withdrawn:
            raise ValidationError({"label": [withdrawn_message(locked)]})
        # The newest prediction is the AI result the reviewer sees; lock it so a re-run cannot slip in.
        prediction = (
            Prediction.objects.select_for_update()
            .filter(scan=scan)
            .select_related("model_version")
            .order_by("-queued_at", "-id")
            .first()
        )
        # A failed diagnosis is reviewed too: the clinician's reading is then the only one the scan has.
        if prediction is None or not prediction.is_final:
            state = "no diagnosis" if prediction is None else f"a diagnosis that is {prediction.get_status_display().lower()}"
            raise ValidationError(
                {"label": [f"This scan has {state}; it can be reviewed once the diagnosis has finished (or failed)."]}
            )
        if prediction_id is not None and prediction_id != prediction.pk:
            newer = prediction.label if prediction.status == Prediction.Status.DONE else prediction.get_status_display().lower()
            raise ValidationError({"prediction": [
                f"A newer AI result ({newer}, {prediction.model_version.name}) arrived after this scan was "
                "opened. Look at it, then review again."
            ]})
        class_names = list(prediction.model_version.class_names)
        errors: dict[str, list[str]] = {}
        if label not in class_names:
            shown = label or "(empty)"
            errors["label"] = [f"Unknown label {shown!r}; choose one of {', '.join(class_names)}."]
        if len(comment) > MAX_COMMENT_LENGTH:
            errors["comment"] = [f"The comment is {len(comment)} characters long; the limit is {MAX_COMMENT_LENGTH}."]
        if errors:
            raise ValidationError(errors)
        review = Review.objects.create(
            scan=scan,
            prediction=prediction,
            label=label,
            agrees_with_ai=label == prediction.label if prediction.status == Prediction.Status.DONE else None,
            comment=comment,
            reviewed_by=user,
        )
        review_saved_notify(review=review)
        pacs_result_send(prediction=prediction, review=review)
        hl7_result_send(scan=locked, event="review.saved")
        performance_alert_refresh(scan=locked, after="the review")
    logger.info(
        "Scan %s reviewed by %s: %s (AI said %s)", scan.pk, user.get_username(), label, prediction.label or "nothing"
    )
    return review


def _safe_folder_name(label: str) -> bool:
    return bool(label) and label not in {".", ".."} and Path(label).name == label and "\\" not in label


def _previous_export_files(out_dir: Path, manifest: Path) -> list[Path]:
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = []
    for row in rows:
        relative = Path(row.get("path") or "")
        # Only files this export wrote: relative, inside out_dir, one class folder deep.
        if relative.is_absolute() or ".." in relative.parts or len(relative.parts) != 2:
            continue
        files.append(out_dir / relative)
    return files


def _copy_reviewed_scans(scans: list[Scan], into: Path) -> list[tuple[str, str, str]]:
    """Copy each scan's stored image into its reviewed label's folder; the manifest rows of the copies."""
    rows: list[tuple[str, str, str]] = []
    for scan in scans:
        label = scan.reviewed_label
        relative = Path(label) / f"{label}-{scan.pk}.{FORMAT_EXTENSIONS.get(scan.format, 'bin')}"
        target = into / relative
        target.parent.mkdir(exist_ok=True)
        try:
            with scan.image.open("rb") as source, target.open("wb") as copy:
                shutil.copyfileobj(source, copy)
        except OSError as exc:
            raise ValidationError(
                {"image": [f"The stored image of scan {scan.pk} could not be read ({exc.__class__.__name__}); "
                           "the previous export is left as it was."]}
            ) from exc
        rows.append((relative.as_posix(), label, f"patient-{scan.patient_id}"))
    return rows


def reviewed_scans_export(*, organization: Organization, out_dir: Path) -> Path:
    """Copy every reviewed scan of the organization into class folders named after its current
    reviewed label, and write ``manifest.csv`` (path, label, series) beside them.

    mlcore reads the result either as a data folder (``list_images``: class folders, numeric id at
    the end of each file name) or as extra training data (``read_extra_manifest``), where the
    reviewed label wins over the data set's. Slices of one patient share a series, so a split never
    puts one patient on both sides. Exporting again into the same folder replaces the previous
    export (whose files its manifest lists) and never touches anything else there.
    """
    out_dir = Path(out_dir)
    manifest = out_dir / MANIFEST_NAME
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValidationError({"out_dir": [f"{out_dir} is a file, not a folder."]})
        if any(out_dir.iterdir()) and not manifest.is_file():
            raise ValidationError(
                {"out_dir": [f"{out_dir} is not empty and holds no earlier export ({MANIFEST_NAME}); choose an empty folder."]}
            )

    scans = list(selectors.reviewed_scans(organization=organization))
    for scan in scans:
        if not _safe_folder_name(scan.reviewed_label):
            raise ValidationError({"label": [f"The label {scan.reviewed_label!r} of scan {scan.pk} cannot be a folder name."]})

    # Copy into a sibling folder first: an image that cannot be read then leaves the previous export whole.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", suffix=".partial", dir=out_dir.parent))
    try:
        rows = _copy_reviewed_scans(scans, staging)
        if manifest.is_file():
            for path in _previous_export_files(out_dir, manifest):
                path.unlink(missing_ok=True)
            manifest.unlink()
            for folder in out_dir.iterdir():
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        out_dir.mkdir(exist_ok=True)
        for relative, _label, _series in rows:
            (out_dir / relative).parent.mkdir(exist_ok=True)
            (staging / relative).replace(out_dir / relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    # The manifest last: its presence means the export is complete.
    partial = manifest.with_suffix(".csv.partial")
    with partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_FIELDS)
        writer.writerows(rows)
    partial.replace(manifest)
    logger.info("Exported %d reviewed scans of %s to %s", len(rows), organization.name, out_dir)
    return manifest
