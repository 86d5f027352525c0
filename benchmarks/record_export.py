"""How long a patient's whole-record export takes per scan, and what the DICOM results in it (the capture and the
structured report of each slice that came as DICOM) add, measured in one run on the database the settings use.

Seeds a scratch database with one patient whose scans are DICOM slices, each with a finished diagnosis and a
review, then builds the ZIP (``record_export.patient_record_zip``) with and without the DICOM results, alternating,
each the median of --runs:

    createdb -h 127.0.0.1 -U postgres kwexport
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kwexport KIDNEYWEB_VAR_DIR=/tmp/kwexport \\
        python benchmarks/record_export.py [--scans 100] [--runs 3]

(The scratch folder takes the slices and the diagnoses queued for them, which no worker reads.)
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SLUG = "benchmark-export"


def seed(scans: int) -> None:
    import datetime

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from diagnosis import services
    from diagnosis.models import Membership, ModelVersion, Organization, Patient, Prediction
    from mlcore.synthetic import dicom_bytes

    version = ModelVersion.objects.create(name="benchmark-v1", path="models/benchmark.keras", sha256="0" * 64,
                                          class_names=["Cyst", "Normal", "Stone", "Tumor"], is_active=True)
    organization = Organization.objects.create(name="Benchmark Export", slug=SLUG)
    user = get_user_model().objects.create_user(f"{SLUG}-admin", password="benchmark-password-1",
                                                first_name="Ada", last_name="Lee")
    Membership.objects.create(user=user, organization=organization, role=Membership.Role.ADMIN)
    patient = Patient.objects.create(organization=organization, mrn="E000001", name="Grace Hopper",
                                     birth_date=datetime.date(1906, 12, 9), sex="F")
    rng = np.random.default_rng(0)
    for k in range(scans):
        pixels = rng.integers(900, 1300, (256, 256), dtype=np.uint16)
        data = dicom_bytes(pixels, patient_id=patient.mrn, study_uid="1.2.826.0.1.3680043.8.498.90",
                           accession_number=f"A-{k}", study_date="20261205", study_time="093015")
        scan = services.scan_create(patient=patient, file=SimpleUploadedFile(f"IM{k}.dcm", data), uploaded_by=user)
        Prediction.objects.filter(scan=scan).update(
            model_version=version, status=Prediction.Status.DONE, label="Stone", confidence=0.91,
            probabilities={"Cyst": 0.03, "Normal": 0.03, "Stone": 0.91, "Tumor": 0.03}, finished_at=timezone.now())
        services.review_create(scan=scan, user=user, label="Stone")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("KIDNEYWEB_VAR_DIR"):
        parser.error("set DATABASE_URL to a scratch PostgreSQL database and KIDNEYWEB_VAR_DIR to a scratch folder")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kidneyweb.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from diagnosis import record_export
    from diagnosis.models import Organization, Patient

    call_command("migrate", verbosity=0)
    slugs = set(Organization.objects.values_list("slug", flat=True))
    if not slugs:
        started = time.perf_counter()
        seed(args.scans)
        print(f"seeded {args.scans} DICOM scans in {time.perf_counter() - started:.0f} s")
    elif slugs != {SLUG}:
        parser.error("this database holds other organizations: use a scratch database")
    patient = Patient.objects.get(organization__slug=SLUG)
    user = patient.organization.memberships.get().user
    held = patient.scans.count()

    def build() -> int:
        into = io.BytesIO()
        record_export.patient_record_zip(patient=patient, user=user, base_url="https://kidneyweb.example", into=into)
        return into.tell()

    with_dicom: list[float] = []
    without: list[float] = []
    original = record_export._dicom_results
    build()  # warm the caches
    for _ in range(args.runs):
        for times, results in ((with_dicom, original), (without, lambda *a, **k: None)):
            record_export._dicom_results = results
            started = time.perf_counter()
            size = build()
            times.append(time.perf_counter() - started)
            if results is original:
                full = size
    record_export._dicom_results = original
    a, b = statistics.median(with_dicom), statistics.median(without)
    print(f"{held} DICOM scans, each reviewed; median of {args.runs}")
    print(f"  without the DICOM results: {b:.2f} s ({b / held * 1000:.0f} ms per scan)")
    print(f"  with them:                 {a:.2f} s ({a / held * 1000:.0f} ms per scan), ZIP {full / 1e6:.1f} MB")
    print(f"  ratio with / without:      {a / b:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
