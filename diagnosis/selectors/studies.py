"""A patient's DICOM studies at a glance: the model reads single slices, but a clinician reads a study, so the
patient's page sums up what the AI and the reviewers said of each study's slices."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from ..models import Prediction, Scan
from .records import prediction_uncertainty
from .worklist import URGENCY_BY_LABEL, URGENCY_OTHER_LABEL


@dataclass(frozen=True)
class StudySummary:
    """One study's standing (not withdrawn) slices. Each slice is counted once, by its newest diagnosis: as an AI
    result the model vouches for (``ai_labels``), as needing review (failed, out of scope or uncertain), or as in
    progress."""

    study_uid: str
    accession_number: str
    study_date: datetime.date | None  # as the scanner's header said; None for slices stored before it was kept
    study_time: datetime.time | None
    description: str
    first_uploaded: datetime.datetime
    slices: int
    ai_labels: tuple[tuple[str, int], ...]  # most serious first
    needs_review: int
    in_progress: int
    reviewed: int
    review_labels: tuple[tuple[str, int], ...]  # the current reviews' labels, most serious first
    # The slice the AI read with its most serious label other than Normal, most confidently: where to look first.
    most_serious: Scan | None


def _serious_first(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (URGENCY_BY_LABEL.get(item[0], URGENCY_OTHER_LABEL), item[0])))


def patient_studies(*, scans: Iterable[Scan]) -> list[StudySummary]:
    """The studies of these scans (a patient's, loaded by ``scan_list``: newest predictions and reviews prefetched),
    newest first (by study date, else by first upload). Slices without a study (PNG or JPEG uploads) and withdrawn
    ones are left out; no query is made."""
    by_study: dict[str, list[Scan]] = {}
    for scan in scans:
        if scan.dicom_study_uid and not scan.is_withdrawn:
            by_study.setdefault(scan.dicom_study_uid, []).append(scan)
    studies = [_summary(uid, sorted(members, key=lambda s: (s.uploaded_at, s.pk))) for uid, members in by_study.items()]
    return sorted(studies, key=lambda study: (study.study_date or study.first_uploaded.date(), study.first_uploaded),
                  reverse=True)


def _summary(study_uid: str, scans: list[Scan]) -> StudySummary:
    ai_labels: Counter[str] = Counter()
    review_labels: Counter[str] = Counter()
    needs_review = in_progress = 0
    confident: list[tuple[Scan, Prediction]] = []
    for scan in scans:
        prediction = scan.latest_prediction
        if prediction is None or not prediction.is_final:
            in_progress += 1
        elif prediction_uncertainty(prediction).needs_review:
            needs_review += 1
        else:
            ai_labels[prediction.label] += 1
            confident.append((scan, prediction))
        review = scan.current_review
        if review is not None:
            review_labels[review.label] += 1
    serious = [(scan, p) for scan, p in confident if p.label in URGENCY_BY_LABEL and p.label != "Normal"]
    most_serious = min(serious, key=lambda sp: (URGENCY_BY_LABEL[sp[1].label], -(sp[1].confidence or 0)),
                       default=(None, None))[0]

    def first(field: str) -> Any:
        # Every slice of a study carries the same header values; an older slice may lack them.
        return next((getattr(s, field) for s in scans if getattr(s, field)), None)

    return StudySummary(
        study_uid=study_uid, accession_number=first("dicom_accession_number") or "",
        study_date=first("dicom_study_date"), study_time=first("dicom_study_time"),
        description=first("dicom_study_description") or "",
        first_uploaded=scans[0].uploaded_at, slices=len(scans), ai_labels=_serious_first(ai_labels),
        needs_review=needs_review, in_progress=in_progress, reviewed=sum(review_labels.values()),
        review_labels=_serious_first(review_labels), most_serious=most_serious,
    )
