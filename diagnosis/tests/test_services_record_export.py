"""Building a whole-record export on the worker: safe to run twice, its lost task queued again, a stopped build
failed with its reason, and nothing of it kept once the record is erased, even while it is built."""

import datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from diagnosis import record_export, selectors, services
from diagnosis.models import RecordExport

from .factories import PatientFactory, ScanFactory

BASE = "http://testserver/"


@pytest.fixture
def patient(organization, clinician):
    patient = PatientFactory(organization=organization, mrn="QX-21")
    ScanFactory(patient=patient, uploaded_by=clinician)
    return patient


def _exports_on_disk() -> set[Path]:
    """The ZIPs in storage (of this test and those before it in the run)."""
    return set((Path(settings.MEDIA_ROOT) / "exports").glob("*.zip"))


def test_building_twice_builds_once(patient, boss):
    before = _exports_on_disk()
    export = services.record_export_request(patient=patient, user=boss, base_url=BASE)

    first = services.record_export_build(export_id=export.pk)
    again = services.record_export_build(export_id=export.pk)

    assert first.status == again.status == RecordExport.Status.DONE and first.file.name == again.file.name
    assert _exports_on_disk() - before == {Path(first.file.path)} and first.scans == 1


def test_erasing_the_record_takes_its_export_with_it(patient, boss):
    export = services.record_export_request(patient=patient, user=boss, base_url=BASE)
    built = services.record_export_build(export_id=export.pk)
    assert Path(built.file.path).is_file()
    assert selectors.patient_erasure_preview(patient=patient).record_exports == 1

    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn="QX-21")

    assert built.file.name in erasure.files and not RecordExport.objects.exists()
    services.erasure_files_remove(erasure_id=erasure.pk)
    assert not Path(built.file.path).exists()


def test_an_export_built_while_the_record_is_erased_keeps_nothing(patient, boss, monkeypatch):
    before = _exports_on_disk()
    export = services.record_export_request(patient=patient, user=boss, base_url=BASE)
    build = record_export.patient_record_zip

    def erased_meanwhile(**kwargs):
        summary = build(**kwargs)
        services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn="QX-21")
        return summary

    monkeypatch.setattr(record_export, "patient_record_zip", erased_meanwhile)

    assert services.record_export_build(export_id=export.pk) is None

    assert not RecordExport.objects.exists() and _exports_on_disk() == before


def test_the_sweep_queues_a_lost_export_again_and_fails_one_whose_worker_stopped(patient, boss,
                                                                                   django_capture_on_commit_callbacks):
    lost = services.record_export_request(patient=patient, user=boss, base_url=BASE)
    other = PatientFactory(organization=patient.organization)
    stopped = services.record_export_request(patient=other, user=boss, base_url=BASE)
    now = timezone.now()
    RecordExport.objects.filter(pk=stopped.pk).update(
        status=RecordExport.Status.RUNNING,
        started_at=now - datetime.timedelta(seconds=settings.KIDNEYWEB_RECORD_EXPORT_SECONDS, minutes=16))
    assert services.record_export_request(patient=patient, user=boss, base_url=BASE) == lost  # still queued
    soon = now + datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(minutes=16)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.record_exports_sweep(now=soon) == ([], [])
        expired, resent = services.record_exports_sweep(now=later)
        again = services.record_exports_sweep(now=later + datetime.timedelta(minutes=1))

    assert (expired, resent) == ([], [lost.pk]) and len(callbacks) == 1
    assert again == ([], [])  # sent again a minute ago: its task is given time
    stopped.refresh_from_db()
    assert stopped.status == RecordExport.Status.FAILED and "The worker building it stopped" in stopped.error
