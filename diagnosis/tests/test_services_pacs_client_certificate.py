"""kidneyweb's TLS client certificate for archives that admit only the hospital's certificates (mutual TLS): checked
when uploaded, its key sealed, presented over DICOM TLS to a real Orthanc that requires it, and the archive's refusal
of a missing or foreign certificate reported for good with what to do."""

import datetime

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.core.exceptions import ValidationError
from django.db import connection

from diagnosis import selectors, services
from diagnosis.models import PacsDelivery, StaffChange

from . import certificates
from . import orthanc as pacs
from .test_services_pacs import STUDY, _dicom_scan, _finished, patient  # noqa: F401 (fixtures)

HOSPITAL_CA = certificates.issue("St. Elsewhere CA", ca=True)


@pytest.fixture(scope="module")
def orthanc_mtls(tmp_path_factory):
    """An Orthanc whose DICOM port takes TLS only, from clients with a certificate of the hospital's CA."""
    reason = pacs.missing()
    if reason:
        pytest.skip(f"{reason}; .ci/run installs it")
    directory = tmp_path_factory.mktemp("orthanc-mtls")
    (directory / "hospital-ca.pem").write_text(HOSPITAL_CA.pem)
    server = pacs.start_tls(directory, client_ca=directory / "hospital-ca.pem")
    yield server
    server.stop()


@pytest.fixture
def mtls_archive(organization, boss, orthanc_mtls, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(orthanc_mtls.ca))  # kidneyweb trusts the archive's certificate
    return services.pacs_set(organization=organization, url=f"dicoms://{pacs.AE_TITLE}@127.0.0.1:{orthanc_mtls.dicom_port}",
                             by=boss)


def test_an_archive_that_requires_a_client_certificate_refuses_none_for_good_then_stores_with_the_hospitals(
        mtls_archive, boss, orthanc_mtls, patient, clinician, django_capture_on_commit_callbacks):
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)

    refused = services.pacs_deliver(delivery_id=delivery.pk)
    assert (refused.status, refused.attempts) == (PacsDelivery.Status.FAILED, 1)
    assert "asks for a client certificate" in refused.last_error and "on the Members page" in refused.last_error
    with pytest.raises(ValidationError, match="asks for a client certificate"):
        services.pacs_check(organization=mtls_archive)

    ours = certificates.client("kidneyweb", by=HOSPITAL_CA)
    services.pacs_client_certificate_set(organization=mtls_archive, certificate=ours.pem, key=ours.key_pem(), by=boss)
    mtls_archive.refresh_from_db()

    assert "answered the DICOM echo" in services.pacs_check(organization=mtls_archive)
    services.pacs_send_again(delivery=refused, by=boss)
    assert services.pacs_deliver(delivery_id=refused.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc_mtls.instance_tags(refused.sop_instance_uid)["StudyInstanceUID"] == STUDY


@pytest.fixture
def https_archive(tmp_path, organization, boss, monkeypatch):
    """A DICOMweb archive on https that admits only clients with a certificate of the hospital's CA."""
    import ssl

    from . import receiver as http_receiver

    cert, key = certificates.issue("test archive", ca=True, host="127.0.0.1").write(tmp_path, "archive")
    (tmp_path / "hospital-ca.pem").write_text(HOSPITAL_CA.pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(tmp_path / "hospital-ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    listening, server = http_receiver.start(tls=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    listening.archive = services.pacs_set(organization=organization, url=listening.url.removesuffix("/kidneyweb/results"),
                                          username="ai", password="pw", by=boss)
    yield listening
    server.shutdown()
    server.server_close()


def test_a_dicomweb_archive_on_https_gets_the_certificate_too_and_refuses_none_for_good(
        https_archive, boss, patient, clinician, django_capture_on_commit_callbacks):
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)

    refused = services.pacs_deliver(delivery_id=delivery.pk)
    assert (refused.status, refused.attempts) == (PacsDelivery.Status.FAILED, 1)
    assert refused.last_error.startswith("The archive asks for a client certificate")
    with pytest.raises(ValidationError, match="asks for a client certificate"):
        services.pacs_check(organization=https_archive.archive)

    ours = certificates.client("kidneyweb", by=HOSPITAL_CA)
    services.pacs_client_certificate_set(organization=https_archive.archive, certificate=ours.pem,
                                         key=ours.key_pem(), by=boss)
    services.pacs_send_again(delivery=refused, by=boss)

    assert services.pacs_deliver(delivery_id=refused.pk).status == PacsDelivery.Status.DELIVERED
    [stored] = https_archive.received
    assert (stored.path, stored.client) == ("/studies", "kidneyweb")
    assert stored.headers["authorization"].startswith("Basic ")  # the password still goes with it


def test_a_certificate_of_another_ca_is_refused_for_good_saying_what_to_check(
        mtls_archive, boss, patient, clinician, django_capture_on_commit_callbacks):
    stranger = certificates.client("kidneyweb", by=certificates.issue("Another CA", ca=True))
    services.pacs_client_certificate_set(organization=mtls_archive, certificate=stranger.pem, key=stranger.key_pem(),
                                         by=boss)
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)

    refused = services.pacs_deliver(delivery_id=delivery.pk)

    assert (refused.status, refused.attempts) == (PacsDelivery.Status.FAILED, 1)
    assert "does not accept kidneyweb's client certificate" in refused.last_error
    assert "trusts the CA that issued it" in refused.last_error


def test_the_key_is_kept_sealed_the_change_recorded_and_the_certificate_summarised(organization, boss):
    ours = certificates.client("kidneyweb.st-elsewhere.org", by=HOSPITAL_CA)
    intermediate_chain = ours.pem + HOSPITAL_CA.pem

    organization = services.pacs_client_certificate_set(organization=organization, certificate=intermediate_chain,
                                                        key=ours.key_pem(), by=boss)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pacs_client_key, pacs_client_certificate FROM diagnosis_organization WHERE id = %s",
                       [organization.pk])
        stored_key, stored_chain = cursor.fetchone()
    assert stored_key.startswith("sealed:v1:") and "PRIVATE KEY" not in stored_key
    assert stored_chain.count("BEGIN CERTIFICATE") == 2
    shown = selectors.archive_client_certificate(organization=organization)
    assert (shown.subject, shown.issuer) == ("kidneyweb.st-elsewhere.org", "St. Elsewhere CA")
    assert shown.not_after == ours.certificate.not_valid_after_utc and shown.expires_soon()  # a day left
    assert StaffChange.objects.get().detail == (
        "client certificate for the archive: kidneyweb.st-elsewhere.org, issued by St. Elsewhere CA, valid until "
        f"{ours.certificate.not_valid_after_utc:%Y-%m-%d}")

    organization = services.pacs_client_certificate_set(organization=organization, certificate="", key="", by=boss)
    assert selectors.archive_client_certificate(organization=organization) is None
    assert StaffChange.objects.order_by("-id").first().detail == "client certificate for the archive removed"


LATER = certificates.NOW + datetime.timedelta(days=2)
EARLIER = certificates.NOW - datetime.timedelta(days=2)


@pytest.mark.parametrize(("certificate", "key", "field", "message"), [
    (lambda c: "not a certificate", lambda c: c.key_pem(), "certificate", "not a certificate in PEM form"),
    (lambda c: c.pem, lambda c: "not a key", "key", "not a private key in PEM form"),
    (lambda c: c.pem, lambda c: c.key_pem(b"passphrase"), "key", "protected by a passphrase"),
    (lambda c: c.pem, lambda c: certificates.client("other", by=HOSPITAL_CA).key_pem(), "key",
     "does not belong to the certificate"),
    (lambda c: certificates.client("old", by=HOSPITAL_CA, valid_from=EARLIER - datetime.timedelta(days=1),
                                   valid_until=EARLIER).pem, None, "certificate", "expired on"),
    (lambda c: certificates.client("soon", by=HOSPITAL_CA, valid_from=LATER, valid_until=LATER).pem, None,
     "certificate", "valid only from"),
    (lambda c: certificates.issue("server", by=HOSPITAL_CA, purpose=ExtendedKeyUsageOID.SERVER_AUTH).pem, None,
     "certificate", "may not identify a client"),
    (lambda c: c.pem, lambda c: "", "key", "Give the certificate and its private key together"),
])
def test_a_certificate_that_cannot_work_is_refused_saying_why_and_the_one_in_use_stays(
        organization, boss, certificate, key, field, message):
    ours = certificates.client("kidneyweb", by=HOSPITAL_CA)
    services.pacs_client_certificate_set(organization=organization, certificate=ours.pem, key=ours.key_pem(), by=boss)

    with pytest.raises(ValidationError) as refused:
        bad = None
        text = certificate(ours)
        if key is None:  # the certificate's own key, so that only the certificate is wrong
            bad = next(issued for issued in certificates.ISSUED if issued.pem == text)
        services.pacs_client_certificate_set(organization=organization, certificate=text,
                                             key=bad.key_pem() if bad else key(ours), by=boss)

    assert message in " ".join(refused.value.message_dict[field])
    organization.refresh_from_db()
    assert selectors.archive_client_certificate(organization=organization).subject == "kidneyweb"


def test_a_key_no_key_of_this_server_opens_fails_the_send_at_once(
        mtls_archive, boss, patient, clinician, settings, django_capture_on_commit_callbacks):
    ours = certificates.client("kidneyweb", by=HOSPITAL_CA)
    services.pacs_client_certificate_set(organization=mtls_archive, certificate=ours.pem, key=ours.key_pem(), by=boss)
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40

    failed = services.pacs_deliver(delivery_id=delivery.pk)

    assert (failed.status, failed.attempts) == (PacsDelivery.Status.FAILED, 1)
    assert "The archive client key stored here was sealed with a key this server does not have" in failed.last_error
    assert "upload kidneyweb's client certificate and key anew on the Members page" in failed.last_error
