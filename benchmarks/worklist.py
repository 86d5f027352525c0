"""How the worklist and the model watch scale with an organization's backlog, on the database the settings use.

Seeds a scratch database with one organization's unreviewed scans, each with a finished diagnosis (1 in 100 out of
scope, about a fifth under the confidence threshold), and colleagues' openings of some of them in the last 10
minutes; a second organization's scans sit beside them. Then times, each the median of --runs:

- an administrator's worklist page, rendered as the browser gets it;
- the first page of the worklist query alone, and its count (the paginator's);
- the next scan after a review ("save and open the next");
- the out-of-scope share of the last 4 weeks the hourly judgement counts (one aggregate);
- the scheduled judgement of uploads for every organization (services.inputs_alerts_judge);
- the deployment's figures a /metrics scrape reads (selectors.operations_snapshot).

The database must hold nothing but what an earlier run of this script seeded (kept, so a change can be timed
against the same rows: run, change, run again):

    createdb -h 127.0.0.1 -U postgres kwbench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kwbench python benchmarks/worklist.py [--scans 50000] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SLUG = "benchmark-hospital"
OTHER_SLUG = "benchmark-other"
LABELS = ["Cyst", "Normal", "Stone", "Tumor"]


def timed(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm the caches and the query plans
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def seed(*, scans: int, openings: int, other: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from diagnosis.models import (Membership, ModelVersion, Organization, Patient, PatientAccess, Prediction,
                                  Scan)

    rng = random.Random(42)
    now = timezone.now()
    User = get_user_model()
    card = {"calibration": {"confidence_threshold": 0.7}, "out_of_scope": {"quantile_of_validation": 0.995},
            "metrics": {"test_series_split": {"accuracy": 0.82}}}
    version = ModelVersion.objects.create(name="benchmark-v1", path="models/benchmark.keras", sha256="0" * 64,
                                          class_names=LABELS, card=card, is_active=True)
    for slug, count in ((SLUG, scans), (OTHER_SLUG, other)):
        with transaction.atomic():
            organization = Organization.objects.create(name=slug.replace("-", " ").title(), slug=slug)
            users = []
            for role, n in ((Membership.Role.ADMIN, 1), (Membership.Role.CLINICIAN, 20)):
                for k in range(n):
                    user = User.objects.create_user(f"{slug}-{role}-{k}", password="benchmark-password-1")
                    Membership.objects.create(user=user, organization=organization, role=role)
                    users.append(user)
            patients = Patient.objects.bulk_create(
                Patient(organization=organization, mrn=f"M{k:06d}", name=f"Patient {k}",
                        birth_date=datetime.date(1940, 1, 1) + datetime.timedelta(days=k % 20000))
                for k in range(max(1, count // 10)))
            for start in range(0, count, 5000):
                batch = Scan.objects.bulk_create(
                    Scan(patient=rng.choice(patients), image=f"scans/benchmark/{k}.png", sha256=f"{k:064x}",
                         width=512, height=512, format="png", uploaded_by=rng.choice(users),
                         uploaded_at=now - datetime.timedelta(minutes=k))
                    for k in range(start, min(count, start + 5000)))
                Prediction.objects.bulk_create(
                    Prediction(scan=scan, model_version=version, status=Prediction.Status.DONE,
                               label=rng.choice(LABELS), confidence=rng.uniform(0.45, 1.0),
                               out_of_scope=rng.random() < 0.01, queued_at=scan.uploaded_at,
                               finished_at=scan.uploaded_at + datetime.timedelta(seconds=5))
                    for scan in batch)
            if slug == SLUG:
                opened = Scan.objects.filter(patient__organization=organization).order_by("?")[:openings]
                PatientAccess.objects.bulk_create(
                    PatientAccess(patient_id=scan.patient_id, scan=scan, user=rng.choice(users[1:]),
                                  what=PatientAccess.What.SCAN, channel=PatientAccess.Channel.WEB,
                                  at=now - datetime.timedelta(seconds=rng.uniform(0, 500)))
                    for scan in opened)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=50_000, help="unreviewed scans of the organization timed")
    parser.add_argument("--other", type=int, default=20_000, help="scans of a second organization beside them")
    parser.add_argument("--openings", type=int, default=200, help="scans colleagues opened in the last minutes")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("set DATABASE_URL to a scratch PostgreSQL database (see the docstring)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kidneyweb.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "localhost,testserver")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from diagnosis import selectors, services
    from diagnosis.models import Membership, Organization, PatientAccess, Scan

    call_command("migrate", verbosity=0)
    slugs = set(Organization.objects.values_list("slug", flat=True))
    if not slugs:
        started = time.perf_counter()
        seed(scans=args.scans, openings=args.openings, other=args.other)
        print(f"seeded {args.scans:,} + {args.other:,} scans in {time.perf_counter() - started:.0f} s")
    elif slugs != {SLUG, OTHER_SLUG}:
        parser.error("this database holds other organizations: use a scratch database")
    # As autovacuum keeps a database in use: rows just loaded have no statistics, and the plans chosen for empty
    # tables are what a restore without ANALYZE would time (4 s for a page over 5,000 scans).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    organization = Organization.objects.get(slug=SLUG)
    held = Scan.objects.filter(patient__organization=organization).count()
    if held != args.scans:
        print(f"(the database was seeded with {held:,} scans; timing those)")
    # Openings age out of the 10-minute window: renew them, so each run times the same colleagues' activity.
    PatientAccess.objects.filter(scan__patient__organization=organization).update(at=timezone.now())

    admin = Membership.objects.get(organization=organization, role=Membership.Role.ADMIN).user
    client = Client()
    client.force_login(admin)
    home = reverse("diagnosis:home")
    response = client.get(home)
    assert response.status_code == 200, response.status_code
    first = selectors.worklist(user=admin).first()
    version = selectors.model_version_active()

    def page() -> None:
        assert client.get(home).status_code == 200

    rows = [
        ("administrator's worklist page", timed(page, args.runs)),
        ("worklist query, first 25 rows", timed(lambda: list(selectors.worklist(user=admin)[:25]), args.runs)),
        ("worklist count", timed(lambda: selectors.worklist(user=admin).count(), args.runs)),
        ("next scan after a review", timed(lambda: selectors.worklist_next(user=admin, after=first), args.runs)),
        ("inputs share of the last 4 weeks", timed(
            lambda: selectors.model_inputs_in_use(organization=organization, model_version=version), args.runs)),
        ("judgement of uploads, every organization", timed(services.inputs_alerts_judge, args.runs)),
        ("figures of a /metrics scrape", timed(selectors.operations_snapshot, args.runs)),
    ]
    print(f"{held:,} unreviewed scans, median of {args.runs} runs:")
    for name, seconds in rows:
        print(f"  {name:<44} {seconds * 1000:8.1f} ms   {seconds / rows[0][1]:6.2f} of the page")
    return 0


if __name__ == "__main__":
    sys.exit(main())
