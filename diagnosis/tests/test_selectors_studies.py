"""A patient's studies at a glance: each DICOM study's standing slices counted once each, by their newest diagnosis
and their current review, with the slice to look at first."""

import datetime

from django.utils import timezone

from diagnosis import selectors
from diagnosis.models import Prediction

from .factories import (DonePredictionFactory, MembershipFactory, PatientFactory, PredictionFactory, ReviewFactory,
                        ScanFactory)

STUDY, OTHER = "1.2.826.0.1.3680043.8.498.41", "1.2.826.0.1.3680043.8.498.42"


def _slice(patient, study=STUDY, minutes_ago=0, **scan):
    return ScanFactory(patient=patient, dicom_study_uid=study, uploaded_at=timezone.now() - datetime.timedelta(
        minutes=minutes_ago), **scan)


def _loaded(patient):
    reader = MembershipFactory(organization=patient.organization).user
    return list(selectors.scan_list(user=reader, patient=patient))


def test_each_slice_of_a_study_counts_once_as_a_result_as_needing_review_or_as_in_progress(organization,
                                                                                        django_assert_num_queries):
    patient = PatientFactory(organization=organization)
    tumour = DonePredictionFactory(scan=_slice(patient, dicom_accession_number="A-41", dicom_study_description="CT KUB",
                                               dicom_study_date=datetime.date(2026, 12, 5)), label="Tumor", top=0.81)
    surer = DonePredictionFactory(scan=_slice(patient), label="Tumor", top=0.93)
    DonePredictionFactory(scan=_slice(patient), label="Stone", top=0.95)
    for _ in range(3):
        DonePredictionFactory(scan=_slice(patient), label="Normal", top=0.97)
    DonePredictionFactory(scan=_slice(patient), label="Cyst", top=0.5)  # under the threshold: needs review
    DonePredictionFactory(scan=_slice(patient), label="Normal", out_of_scope=True)
    PredictionFactory(scan=_slice(patient), status=Prediction.Status.FAILED)
    PredictionFactory(scan=_slice(patient))  # queued
    ReviewFactory(prediction=tumour, label="Tumor")
    ReviewFactory(prediction=surer, label="Cyst")  # corrected
    withdrawn = DonePredictionFactory(scan=_slice(patient, withdrawn_at=timezone.now()), label="Tumor", top=0.99)

    scans = _loaded(patient)
    with django_assert_num_queries(0):  # read from what the patient's page loaded already
        [study] = selectors.patient_studies(scans=scans)

    assert (study.study_uid, study.accession_number, study.slices) == (STUDY, "A-41", 10)
    assert (study.study_date, study.description) == (datetime.date(2026, 12, 5), "CT KUB")
    assert study.ai_labels == (("Tumor", 2), ("Stone", 1), ("Normal", 3))
    assert (study.needs_review, study.in_progress) == (3, 1)
    assert study.reviewed == 2 and study.review_labels == (("Tumor", 1), ("Cyst", 1))
    assert study.most_serious == surer.scan and study.most_serious != withdrawn.scan


def test_studies_come_newest_first_and_slices_without_one_are_left_out(organization):
    patient = PatientFactory(organization=organization)
    DonePredictionFactory(scan=_slice(patient, study=OTHER, minutes_ago=60), label="Normal")
    DonePredictionFactory(scan=_slice(patient, minutes_ago=5), label="Normal")
    # Made years ago, uploaded last (a prior study brought in for comparison): it sorts by when it was made.
    prior = "1.2.826.0.1.3680043.8.498.43"
    DonePredictionFactory(scan=_slice(patient, study=prior, dicom_study_date=datetime.date(2021, 3, 1)), label="Normal")
    DonePredictionFactory(scan=ScanFactory(patient=patient), label="Tumor")  # a PNG upload: no study

    studies = selectors.patient_studies(scans=_loaded(patient))

    assert [s.study_uid for s in studies] == [STUDY, OTHER, prior]
    assert all(s.most_serious is None for s in studies)  # only normal slices: nothing to look at first
