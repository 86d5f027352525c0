"""AI results sent to an archive that speaks only DICOM's own network protocol (DIMSE): stored in a real Orthanc with
C-STORE as kidneyweb's AE title, the connection checked with C-ECHO; the archive's refusals count as STOW-RS ones do."""

import socket

import pytest
from django.core.exceptions import ValidationError
from pydicom.dataset import Dataset

from diagnosis import services
from diagnosis.models import PacsDelivery
from diagnosis.services import dimse
from diagnosis.services.outbound import NotDelivered

from . import orthanc as pacs
from .test_services_pacs import STUDY, _dicom_scan, _finished, allow_http, patient  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def orthanc_tls(tmp_path_factory):
    """A second Orthanc whose DICOM port takes TLS only, with a certificate of its own CA."""
    reason = pacs.missing()
    if reason:
        pytest.skip(f"{reason}; .ci/run installs it")
    server = pacs.start_tls(tmp_path_factory.mktemp("orthanc-tls"))
    yield server
    server.stop()


@pytest.fixture
def dimse_archive(organization, boss, orthanc, allow_http):
    return services.pacs_set(organization=organization, url=orthanc.dimse, by=boss)


def test_a_result_is_stored_by_c_store_in_its_study_and_the_connection_is_checked_with_an_echo(
        dimse_archive, orthanc, patient, clinician, settings, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    delivery, _ = _finished(scan, django_capture_on_commit_callbacks)

    delivered = services.pacs_deliver(delivery_id=delivery.pk)

    assert (delivered.status, delivered.attempts, delivered.last_error) == (PacsDelivery.Status.DELIVERED, 1, "")
    stored = orthanc.instance_tags(delivery.sop_instance_uid)
    assert (stored["StudyInstanceUID"], stored["PatientID"], stored["Modality"]) == (STUDY, "00123456", "OT")
    assert services.pacs_check(organization=dimse_archive) == (
        f"The archive {pacs.AE_TITLE}@127.0.0.1:{orthanc.dicom_port} answered the DICOM echo as "
        f"{settings.KIDNEYWEB_DICOM_AE_TITLE}: it is reached.")
    # A withdrawal's rejection note goes the same way.
    services.scan_withdraw(scan=scan, user=clinician, reason="Wrong patient.")
    note = PacsDelivery.objects.get(scan=scan, kind=PacsDelivery.Kind.REJECTION)
    assert services.pacs_deliver(delivery_id=note.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc.instance_tags(note.sop_instance_uid)["Modality"] == "KO"


def test_a_wrong_ae_title_is_refused_at_once_and_says_what_to_check(
        organization, boss, orthanc, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    archive = services.pacs_set(organization=organization, url=f"dicom://NOTORTHANC@127.0.0.1:{orthanc.dicom_port}",
                                by=boss)
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)

    refused = services.pacs_deliver(delivery_id=delivery.pk)

    assert (refused.status, refused.attempts) == (PacsDelivery.Status.FAILED, 1)
    assert "refused the association" in refused.last_error and "Check the archive's AE title" in refused.last_error
    with pytest.raises(ValidationError, match="Check the archive's AE title"):
        services.pacs_check(organization=archive)


def test_an_archive_that_does_not_answer_is_tried_again(
        organization, boss, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    services.pacs_set(organization=organization, url=f"dicom://PACS@127.0.0.1:{port}", by=boss)
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)

    with pytest.raises(NotDelivered, match="Not reached"):
        services.pacs_deliver(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (PacsDelivery.Status.PENDING, 1)


def test_a_dicom_address_is_written_one_way_sent_unencrypted_only_where_allowed_and_takes_no_password(
        organization, boss, settings):
    with pytest.raises(ValidationError, match="unencrypted"):
        services.pacs_set(organization=organization, url="dicom://PACS@pacs.example.org:104", by=boss)
    services.pacs_set(organization=organization, url="dicoms://PACS@pacs.example.org:2762", by=boss)
    assert dimse.parse("dicoms://PACS@pacs.example.org:2762").tls
    settings.KIDNEYWEB_PACS_ALLOW_HTTP = True
    for wrong in ["dicom://pacs.example.org:104", "dicom://PACS@pacs.example.org", "dicom://A_TITLE_LONGER_THAN_16@h:104",
                  "dicom://PACS@pacs.example.org:70000"]:
        with pytest.raises(ValidationError, match=r"dicom://AE_TITLE@host:port \(dicoms:// over TLS\)"):
            services.pacs_set(organization=organization, url=wrong, by=boss)
    with pytest.raises(ValidationError, match="takes no user name or password"):
        services.pacs_set(organization=organization, url="dicom://PACS@pacs.example.org:104", username="ai",
                          password="x", by=boss)

    services.pacs_set(organization=organization, url="dicom://PACS@pacs.example.org:104", by=boss)

    organization.refresh_from_db()
    assert organization.pacs_url == "dicom://PACS@pacs.example.org:104"
    assert dimse.parse(organization.pacs_url) == dimse.Address("PACS", "pacs.example.org", 104)


@pytest.mark.parametrize("code, delivered, final, words", [
    (0x0000, True, False, ""),
    (0xB000, True, False, ""),  # stored, with some elements coerced or left out
    (0xA702, False, False, "out of resources"),
    (0xA900, False, True, "the data set does not match its SOP class"),
    (0xC123, False, True, "it could not understand the instance"),
    (0x0124, False, True, "not authorized"),
])
def test_the_archives_store_status_counts_as_a_stow_answer_does(code, delivered, final, words):
    status = Dataset()
    status.Status = code

    outcome = dimse._status_outcome(status, dimse.Address("PACS", "pacs.example.org", 104))

    assert (outcome["delivered"], outcome.get("final", False)) == (delivered, final)
    assert words in outcome["error"]


def test_over_tls_a_result_is_stored_once_the_archives_certificate_is_trusted_and_refused_for_good_before(
        organization, boss, orthanc_tls, patient, clinician, monkeypatch, django_capture_on_commit_callbacks):
    address = f"dicoms://{pacs.AE_TITLE}@127.0.0.1:{orthanc_tls.dicom_port}"
    # Encrypted: allowed without KIDNEYWEB_PACS_ALLOW_HTTP.
    archive = services.pacs_set(organization=organization, url=address, by=boss)
    untrusted, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)

    refused = services.pacs_deliver(delivery_id=untrusted.pk)
    assert (refused.status, refused.attempts) == (PacsDelivery.Status.FAILED, 1)
    assert "TLS certificate is not trusted" in refused.last_error and "SSL_CERT_FILE" in refused.last_error
    with pytest.raises(ValidationError, match="not trusted"):
        services.pacs_check(organization=archive)

    monkeypatch.setenv("SSL_CERT_FILE", str(orthanc_tls.ca))  # the hospital's CA
    assert "answered the DICOM echo" in services.pacs_check(organization=archive)
    services.pacs_send_again(delivery=refused, by=boss)
    assert services.pacs_deliver(delivery_id=refused.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc_tls.instance_tags(refused.sop_instance_uid)["StudyInstanceUID"] == STUDY


def test_tls_to_a_port_that_takes_none_is_refused_for_good_with_what_to_check(
        organization, boss, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    services.pacs_set(organization=organization, url=orthanc.dimse.replace("dicom://", "dicoms://"), by=boss)
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)

    refused = services.pacs_deliver(delivery_id=delivery.pk)

    assert refused.status == PacsDelivery.Status.FAILED
    assert "check that this port takes DICOM over TLS" in refused.last_error
