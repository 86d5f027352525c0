"""OAuth 2.0 for DICOMweb archives behind an authorization server (dcm4chee-arc with Keycloak, a cloud DICOM service
with its identity provider): kidneyweb gets an access token with its own client id and secret (the client
credentials grant, RFC 6749 4.4) and sends it as ``Authorization: Bearer`` instead of a user name and password.

The secret is sealed like the archive's password. Each process keeps the token it got until a minute before it
expires, so a busy worker asks the authorization server once per token, not once per result; an archive that
answers 401 all the same (a token revoked early) makes the next attempt fetch a new one.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import Organization
from ..sealed import Unreadable
from . import dimse, outbound
from .staff import policy_change_record

EARLY = 60  # seconds before its expiry a token is no longer used
_cache: dict[tuple[int, str], tuple[str, float]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class TokenUnavailable(Exception):
    """No access token: ``final`` when asking again cannot help (the client or its secret refused)."""

    reason: str
    final: bool

    def __str__(self) -> str:
        return self.reason


def _identity(organization: Organization) -> tuple[int, str]:
    # Another client id, secret, scope or token address is another token.
    secret = hashlib.sha256(str(organization.pacs_client_secret).encode()).hexdigest()
    return organization.pk, "\0".join([organization.pacs_token_url, organization.pacs_client_id, secret,
                                      organization.pacs_scope])


def forget(organization: Organization) -> None:
    """Drop the token kept for the organization (the archive refused it, or the settings changed)."""
    with _lock:
        for key in [key for key in _cache if key[0] == organization.pk]:
            del _cache[key]


def access_token(organization: Organization) -> str:
    """A current access token for the organization's archive; raises TokenUnavailable saying why not."""
    if isinstance(organization.pacs_client_secret, Unreadable):
        raise TokenUnavailable(organization.pacs_client_secret.reason, final=True)
    key = _identity(organization)
    with _lock:
        kept = _cache.get(key)
    if kept and kept[1] - EARLY > time.time():
        return kept[0]
    form = {"grant_type": "client_credentials", "client_id": organization.pacs_client_id,
            "client_secret": organization.pacs_client_secret}
    if organization.pacs_scope:
        form["scope"] = organization.pacs_scope
    answer = outbound.post(organization.pacs_token_url, body=urllib.parse.urlencode(form).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
        "User-Agent": "kidneyweb-pacs/1"}, receiver="archive's authorization server")
    try:
        body = json.loads(answer.body or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if answer.ok and isinstance(body.get("access_token"), str) and str(body.get("token_type", "")).lower() == "bearer":
        lifetime = body.get("expires_in")
        expires = time.time() + (float(lifetime) if isinstance(lifetime, (int, float)) else 300)
        with _lock:
            _cache[key] = (body["access_token"], expires)
        return body["access_token"]
    if answer.status is None or answer.status >= 500 or answer.status == 429:
        raise TokenUnavailable(f"No access token: {answer.error}", final=False)
    # RFC 6749 5.2: invalid_client, unauthorized_client, invalid_scope ... with a description.
    said = ": ".join(str(body[field]) for field in ("error", "error_description") if body.get(field))
    what = f"refused kidneyweb's client ({said})" if said else f"answered {answer.status} without an access token"
    raise TokenUnavailable(f"The archive's authorization server {what}: check the client id, its secret and the "
                           "scope on the Members page.", final=True)


@transaction.atomic
def pacs_oauth_set(*, organization: Organization, token_url: str, client_id: str = "", client_secret: str = "",
                   scope: str = "", by: AbstractBaseUser) -> Organization:
    """Authenticate to the organization's DICOMweb archive with OAuth 2.0 client credentials from
    ``token_url`` (blank: stop; the user name and password, if any, are used again). A blank secret keeps the one set
    for the same client id. The change is recorded."""
    token_url, client_id, scope = token_url.strip(), client_id.strip(), " ".join(scope.split())
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if not token_url:
        if organization.pacs_token_url:
            organization.pacs_token_url = organization.pacs_client_id = organization.pacs_scope = ""
            organization.pacs_client_secret = ""
            organization.save(update_fields=["pacs_token_url", "pacs_client_id", "pacs_client_secret", "pacs_scope"])
            policy_change_record(organization=organization, by=by, detail="OAuth 2.0 to the archive off")
        forget(organization)
        return organization
    if dimse.parse(organization.pacs_url) is not None:
        raise ValidationError({"token_url": [
            "A DICOM (DIMSE) archive takes no OAuth 2.0: it knows kidneyweb by its AE title. OAuth 2.0 is for a "
            "DICOMweb archive (https://)."]})
    outbound.address_check(token_url, allow_http=settings.KIDNEYWEB_PACS_ALLOW_HTTP,
                           what="the authorization server's token address,",
                           example="https://sso.example.org/realms/pacs/protocol/openid-connect/token")
    if not client_id:
        raise ValidationError({"client_id": ["Enter the client id the authorization server knows kidneyweb by."]})
    if not client_secret and client_id == organization.pacs_client_id:
        client_secret = organization.pacs_client_secret
    if not client_secret or isinstance(client_secret, Unreadable):
        raise ValidationError({"client_secret": ["Enter the client's secret."]})
    organization.pacs_token_url, organization.pacs_client_id = token_url, client_id
    organization.pacs_client_secret, organization.pacs_scope = client_secret, scope
    organization.save(update_fields=["pacs_token_url", "pacs_client_id", "pacs_client_secret", "pacs_scope"])
    forget(organization)
    host = urllib.parse.urlsplit(token_url).netloc
    policy_change_record(organization=organization, by=by,
                         detail=f"OAuth 2.0 to the archive: client {client_id} of {host}"[:200])
    return organization
