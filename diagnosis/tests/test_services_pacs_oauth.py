"""A DICOMweb archive behind an OAuth 2.0 authorization server: kidneyweb gets a token with its client credentials
from a real token endpoint, sends it as a bearer token, reuses it until it nearly expires, gets a new one when the
archive refuses it, and reports a refused client for good and an unreachable server for another try."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from diagnosis import services
from diagnosis.models import PacsDelivery, StaffChange
from diagnosis.services import archive_oauth
from diagnosis.services.outbound import NotDelivered

from . import authorization_server
from .test_services_pacs import _dicom_scan, _finished, allow_http, patient  # noqa: F401 (fixtures)

SECRET = "kc-secret-7f3a"


@pytest.fixture
def sso():
    state, server = authorization_server.start(client_id="kidneyweb", client_secret=SECRET, scope="dicom.write")
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def archive(organization, boss, receiver, sso, allow_http):
    """The receiver as the archive's DICOMweb store, taking only tokens the authorization server issued."""
    receiver.bearer_tokens = set()
    sso_issued = sso.issued

    class Issued(set):  # the archive knows every token the authorization server issued, as it would
        def __contains__(self, token) -> bool:
            return token in sso_issued and token not in revoked

    revoked: set[str] = set()
    receiver.bearer_tokens = Issued()
    receiver.revoked = revoked
    services.pacs_set(organization=organization, url=receiver.url, by=boss)
    services.pacs_oauth_set(organization=organization, token_url=sso.url, client_id="kidneyweb", client_secret=SECRET,
                            scope="dicom.write", by=boss)
    archive_oauth.forget(organization)
    yield receiver
    archive_oauth.forget(organization)


def _deliver(scan_maker, callbacks_fixture):
    delivery, _ = _finished(scan_maker(), callbacks_fixture)
    return services.pacs_deliver(delivery_id=delivery.pk)


def test_results_go_with_a_bearer_token_got_once_with_the_client_credentials(
        archive, sso, organization, patient, clinician, django_capture_on_commit_callbacks):
    first = _deliver(lambda: _dicom_scan(patient, clinician, seed=1), django_capture_on_commit_callbacks)
    second = _deliver(lambda: _dicom_scan(patient, clinician, seed=2), django_capture_on_commit_callbacks)

    assert first.status == second.status == PacsDelivery.Status.DELIVERED
    assert sso.requests == [{"grant_type": "client_credentials", "client_id": "kidneyweb", "client_secret": SECRET,
                             "scope": "dicom.write"}]  # one token for both
    assert [r.headers["authorization"] for r in archive.received] == [f"Bearer {sso.issued[0]}"] * 2
    organization.refresh_from_db()
    assert services.pacs_check(organization=organization) == (
        "The archive answered to OAuth 2.0 client kidneyweb: its DICOMweb service is reached (200).")


def test_a_token_near_its_expiry_or_refused_by_the_archive_is_replaced(
        archive, sso, organization, patient, clinician, django_capture_on_commit_callbacks):
    sso.lifetime = 30  # within a minute of expiry from the start: never reused
    _deliver(lambda: _dicom_scan(patient, clinician, seed=1), django_capture_on_commit_callbacks)
    _deliver(lambda: _dicom_scan(patient, clinician, seed=2), django_capture_on_commit_callbacks)
    assert len(sso.issued) == 2

    sso.lifetime = 3600
    _deliver(lambda: _dicom_scan(patient, clinician, seed=3), django_capture_on_commit_callbacks)
    archive.revoked.update(sso.issued)  # revoked early, as an administrator of the archive may
    stored = _deliver(lambda: _dicom_scan(patient, clinician, seed=4), django_capture_on_commit_callbacks)

    assert (stored.status, stored.attempts) == (PacsDelivery.Status.DELIVERED, 1)  # a new token on the same try
    assert len(sso.issued) == 4 and archive.received[-1].headers["authorization"] == f"Bearer {sso.issued[-1]}"


def test_a_refused_client_fails_for_good_with_the_servers_words_and_a_server_down_is_tried_again(
        archive, sso, organization, boss, patient, clinician, django_capture_on_commit_callbacks):
    sso.down = True
    delivery, _ = _finished(_dicom_scan(patient, clinician, seed=1), django_capture_on_commit_callbacks)
    with pytest.raises(NotDelivered, match="No access token: The archive's authorization server answered 503"):
        services.pacs_deliver(delivery_id=delivery.pk)

    sso.down = False
    services.pacs_oauth_set(organization=organization, token_url=sso.url, client_id="kidneyweb",
                            client_secret="wrong", scope="dicom.write", by=boss)
    refused = services.pacs_deliver(delivery_id=delivery.pk)

    assert (refused.status, refused.attempts) == (PacsDelivery.Status.FAILED, 2)
    assert refused.last_error == (
        "The archive's authorization server refused kidneyweb's client (invalid_client: Invalid client or Invalid "
        "client credentials): check the client id, its secret and the scope on the Members page.")
    organization.refresh_from_db()
    with pytest.raises(ValidationError, match="invalid_client"):
        services.pacs_check(organization=organization)


def test_the_secret_is_sealed_kept_when_left_blank_and_the_changes_recorded(archive, sso, organization, boss):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pacs_client_secret FROM diagnosis_organization WHERE id = %s", [organization.pk])
        assert cursor.fetchone()[0].startswith("sealed:v1:")

    kept = services.pacs_oauth_set(organization=organization, token_url=sso.url, client_id="kidneyweb", by=boss)
    assert kept.pacs_client_secret == SECRET and kept.pacs_scope == ""
    with pytest.raises(ValidationError, match="Enter the client's secret"):
        services.pacs_oauth_set(organization=organization, token_url=sso.url, client_id="another", by=boss)
    with pytest.raises(ValidationError, match="token address, starting with https://"):
        services.pacs_oauth_set(organization=organization, token_url="ftp://sso.example.org/token",
                                client_id="kidneyweb", client_secret="x", by=boss)

    off = services.pacs_oauth_set(organization=organization, token_url="", by=boss)
    assert (off.pacs_token_url, off.pacs_client_id, off.pacs_client_secret) == ("", "", "")
    host = sso.url.split("/")[2]
    assert [c.detail for c in StaffChange.objects.order_by("id")][-3:] == [
        f"OAuth 2.0 to the archive: client kidneyweb of {host}", f"OAuth 2.0 to the archive: client kidneyweb of {host}",
        "OAuth 2.0 to the archive off"]


def test_a_dicom_archive_takes_no_oauth(organization, boss, allow_http):
    services.pacs_set(organization=organization, url="dicom://PACS@127.0.0.1:104", by=boss)

    with pytest.raises(ValidationError, match="A DICOM \\(DIMSE\\) archive takes no OAuth 2.0"):
        services.pacs_oauth_set(organization=organization, token_url="https://sso.example.org/token",
                                client_id="kidneyweb", client_secret="x", by=boss)


def test_a_secret_no_key_of_this_server_opens_fails_the_send_at_once(
        archive, sso, organization, patient, clinician, settings, django_capture_on_commit_callbacks):
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)

    failed = services.pacs_deliver(delivery_id=delivery.pk)

    assert failed.status == PacsDelivery.Status.FAILED
    assert ("The archive OAuth client secret stored here was sealed with a key this server does not have"
            in failed.last_error)
    assert sso.requests == []  # no token was asked for with a secret it cannot read
