"""CT slices sent by DICOM's own protocol (C-STORE), to the listener running as its own process
(`manage.py dicom_listener`), from an archive's AE (pynetdicom as the sender): filed for the patient the header
names and diagnosed; refused, with why, for an unknown patient, a sender not configured, another AE title called or
an account deactivated meanwhile."""

from __future__ import annotations

import io
import os
import socket
import ssl
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pydicom
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from diagnosis.models import DicomStoreRefusal, Prediction, Scan
from mlcore.synthetic import dicom_bytes

from . import certificates
from .celery_worker import database_url_of_the_test_database
from .factories import MembershipFactory, ModelVersionFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROUTER = "pacs-router"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _listener(tmp_path, peers: str = f"PACS={ROUTER}", **more: str) -> Iterator[int]:
    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "kidneyweb.settings_test",
           "DATABASE_URL": database_url_of_the_test_database(), "KIDNEYWEB_DICOM_PEERS": peers,
           "KIDNEYWEB_DICOM_AE_TITLE": "KIDNEYWEB", "PYTHONUNBUFFERED": "1", **more}
    log = tmp_path / "listener.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "manage.py", "dicom_listener", "--host", "127.0.0.1", "--port",
                                    str(port)], cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Listening on" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _slice(mrn: str, seed: int = 0) -> pydicom.Dataset:
    pixels = np.random.default_rng(seed).integers(900, 1300, (64, 64), dtype=np.uint16)
    return pydicom.dcmread(io.BytesIO(dicom_bytes(pixels, patient_id=mrn, study_description="CT ABDOMEN")))


def _send(port: int, dataset: pydicom.Dataset | None, *, calling: str = "PACS", called: str = "KIDNEYWEB",
          tls: ssl.SSLContext | None = None):
    """The status the listener answers (C-STORE, or C-ECHO for no dataset); None when it refused the association
    (or the TLS handshake failed)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, Verification

    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", port, ae_title=called,
                               tls_args=(tls, "127.0.0.1") if tls is not None else None)
    if not association.is_established:
        return None
    try:
        return association.send_c_store(dataset) if dataset is not None else association.send_c_echo()
    finally:
        association.release()


@pytest.fixture
def router(organization):
    ModelVersionFactory(is_active=True)
    return MembershipFactory(organization=organization, user__username=ROUTER).user


def test_a_ct_slice_the_archive_sends_is_filed_for_its_patient_and_diagnosed(tmp_path, organization, router,
                                                                              inference_queue):
    patient = PatientFactory(organization=organization, mrn="00123456")
    dataset = _slice("00123456")

    with _listener(tmp_path) as port:
        echo = _send(port, None)
        stored = _send(port, dataset)
        again = _send(port, dataset)  # an archive retries: the same slice is not filed twice

    assert echo.Status == 0x0000 and stored.Status == 0x0000 and again.Status == 0x0000
    scan = Scan.objects.get()
    assert (scan.patient, scan.uploaded_by, scan.dicom_instance_uid) == (patient, router, dataset.SOPInstanceUID)
    assert scan.predictions.get().status == Prediction.Status.QUEUED
    assert [message["args"] for message in inference_queue.drain()] == [[scan.predictions.get().pk]]


def test_a_slice_of_an_unregistered_patient_is_refused_with_why_and_kept_for_the_administrators(
        tmp_path, organization, router):
    with _listener(tmp_path) as port:
        refused = _send(port, _slice("NOBODY-1"))

    assert refused.Status == 0x0110 and "NOBODY-1" in refused.ErrorComment
    refusal = DicomStoreRefusal.objects.get()
    assert (refusal.patient_id, refusal.sent_by, refusal.failure_code) == ("NOBODY-1", router, 0x0110)
    assert not Scan.objects.exists()


def test_a_sender_not_configured_or_calling_another_title_is_turned_away_and_a_deactivated_account_at_once(
        tmp_path, organization, router):
    PatientFactory(organization=organization, mrn="00123456")

    with _listener(tmp_path) as port:
        assert _send(port, None, calling="STRANGER") is None
        assert _send(port, None, called="SOMEONE_ELSE") is None
        get_user_model().objects.filter(pk=router.pk).update(is_active=False)
        refused = _send(port, _slice("00123456"))

    assert refused.Status == 0x0124 and not Scan.objects.exists()


def test_the_listener_will_not_start_without_senders_or_with_an_account_it_does_not_have(settings, organization):
    settings.KIDNEYWEB_DICOM_PEERS = []
    with pytest.raises(CommandError, match="set KIDNEYWEB_DICOM_PEERS"):
        call_command("dicom_listener")
    settings.KIDNEYWEB_DICOM_PEERS = ["PACS=nobody"]
    with pytest.raises(CommandError, match="no active kidneyweb account 'nobody'"):
        call_command("dicom_listener")
    settings.KIDNEYWEB_DICOM_PEERS = ["PACS"]
    with pytest.raises(CommandError, match="AE_TITLE=username"):
        call_command("dicom_listener")
    MembershipFactory(organization=organization, user__username="nobody")
    settings.KIDNEYWEB_DICOM_PEERS = ["PACS=nobody"]
    settings.KIDNEYWEB_DICOM_TLS_CERT, settings.KIDNEYWEB_DICOM_TLS_KEY = "/no/such/cert.pem", "/no/such/key.pem"
    with pytest.raises(CommandError, match="TLS files cannot be used"):
        call_command("dicom_listener")


def test_over_tls_only_a_sender_with_a_certificate_the_hospitals_ca_signed_connects(tmp_path, organization, router):
    PatientFactory(organization=organization, mrn="00123456")
    hospital_ca = certificates.issue("Hospital CA", ca=True)
    server_cert, server_key = certificates.issue("kidneyweb", by=hospital_ca, host="127.0.0.1").write(tmp_path, "server")
    (tmp_path / "ca.pem").write_text(hospital_ca.pem)

    def sender(signed_by) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        cert, key = certificates.client("PACS", by=signed_by).write(tmp_path, f"client-{id(signed_by)}")
        context.load_cert_chain(cert, key)
        return context

    with _listener(tmp_path, KIDNEYWEB_DICOM_TLS_CERT=str(server_cert), KIDNEYWEB_DICOM_TLS_KEY=str(server_key),
                   KIDNEYWEB_DICOM_TLS_CLIENT_CA=str(tmp_path / "ca.pem")) as port:
        assert "(TLS, senders' certificates required)" in (tmp_path / "listener.log").read_text()
        plain = _send(port, None)
        stranger = _send(port, None, tls=sender(certificates.issue("Another CA", ca=True)))
        stored = _send(port, _slice("00123456"), tls=sender(hospital_ca))

    assert plain is None and stranger is None
    assert stored.Status == 0x0000 and Scan.objects.count() == 1
