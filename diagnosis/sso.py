"""Single sign-on with the hospital's identity provider (OpenID Connect: Entra ID, ADFS, Keycloak, Okta): a
clinician logs in with the hospital account they already have, and the hospital's password and multi-factor
policies apply.

The authorization code flow with PKCE (RFC 7636), a confidential client (``client_secret_basic``): kidneyweb sends
the browser to the provider with a one-time ``state`` and ``nonce``, takes the code back, exchanges it for an ID
token and accepts that token only when its signature (the provider's published keys), issuer, audience, expiry and
nonce are right. The token names the user (``KIDNEYWEB_OIDC_USERNAME_CLAIM``); kidneyweb logs in the active
member of that username, whom an administrator added, or whom the hospital's groups named (``services.sign_on``): a
hospital account alone opens no patient data. Logging out ends the provider's session too (``end_session_url``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings

logger = logging.getLogger(__name__)

TIMEOUT = 10  # seconds for each call to the provider
LEEWAY = 60  # seconds of clock difference allowed with the provider
DISCOVERY_SECONDS = 3600  # how long the provider's configuration is kept
_discovered: dict[str, tuple[dict[str, Any], float]] = {}
_jwks_clients: dict[str, jwt.PyJWKClient] = {}
_lock = threading.Lock()


class SignOnFailed(Exception):
    """The sign-on did not name a user kidneyweb may log in; the message says why, for the login page."""


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and what the callback checks, kept in the session meanwhile."""

    url: str
    state: str
    nonce: str
    verifier: str
    at: float  # when it started (epoch seconds): a login the provider checked must not be older


@dataclass(frozen=True)
class SignedOn:
    """Who the provider said logged in, and its ID token, kept in the session to end the provider's session on
    logout (``end_session_url``)."""

    username: str
    id_token: str
    # For adding a member at their first sign-on (services.sign_on): the groups the token names
    # (KIDNEYWEB_OIDC_GROUPS_CLAIM), and the person's names and email as the provider holds them.
    groups: tuple[str, ...] = ()
    first_name: str = ""
    last_name: str = ""
    email: str = ""


def enabled() -> bool:
    return bool(settings.KIDNEYWEB_OIDC_ISSUER and settings.KIDNEYWEB_OIDC_CLIENT_ID)


def _get_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}),
                                    timeout=TIMEOUT) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SignOnFailed("The hospital's sign-on service did not answer; try again, or log in with your "
                           "kidneyweb password.") from exc


def configuration() -> dict[str, Any]:
    """The provider's OpenID configuration (its discovery document), kept for an hour."""
    issuer = settings.KIDNEYWEB_OIDC_ISSUER.rstrip("/")
    with _lock:
        kept = _discovered.get(issuer)
        if kept and kept[1] > time.monotonic():
            return kept[0]
    found = _get_json(f"{issuer}/.well-known/openid-configuration")
    if found.get("issuer", "").rstrip("/") != issuer:
        raise SignOnFailed("The hospital's sign-on service names another issuer than the one configured.")
    with _lock:
        _discovered[issuer] = (found, time.monotonic() + DISCOVERY_SECONDS)
    return found


def forget() -> None:
    """Forget the provider's configuration and keys (a new issuer set, a test)."""
    with _lock:
        _discovered.clear()
        _jwks_clients.clear()


def start(*, redirect_uri: str) -> Started:
    """The provider's address to send the browser to, asking for a code for ``redirect_uri``."""
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    asked = {
        "response_type": "code", "client_id": settings.KIDNEYWEB_OIDC_CLIENT_ID, "redirect_uri": redirect_uri,
        "scope": settings.KIDNEYWEB_OIDC_SCOPE, "state": state, "nonce": nonce, "code_challenge": challenge,
        "code_challenge_method": "S256"}
    if settings.KIDNEYWEB_OIDC_PROMPT_LOGIN:
        asked["prompt"] = "login"
    endpoint = configuration()["authorization_endpoint"]
    return Started(url=f"{endpoint}{'&' if '?' in endpoint else '?'}{urllib.parse.urlencode(asked)}", state=state,
                   nonce=nonce, verifier=verifier, at=time.time())


def finish(*, code: str, redirect_uri: str, nonce: str, verifier: str, started_at: float) -> SignedOn:
    """Exchange the code for an ID token, check it, and return the username it names, with the token. With
    KIDNEYWEB_OIDC_PROMPT_LOGIN, a token saying the user logged in at the provider before this sign-on started
    (``auth_time``: the provider passed on an open session) is refused."""
    config = configuration()
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                   "code_verifier": verifier}).encode()
    credentials = base64.b64encode(
        f"{urllib.parse.quote(settings.KIDNEYWEB_OIDC_CLIENT_ID, safe='')}:"
        f"{urllib.parse.quote(settings.KIDNEYWEB_OIDC_CLIENT_SECRET, safe='')}".encode()).decode()
    request = urllib.request.Request(config["token_endpoint"], data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
        "Authorization": f"Basic {credentials}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            tokens = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        logger.warning("Sign-on: the token endpoint answered %s: %s", exc.code, exc.read()[:300])
        raise SignOnFailed("The hospital's sign-on service refused to confirm the login; try again.") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SignOnFailed("The hospital's sign-on service did not answer; try again, or log in with your "
                           "kidneyweb password.") from exc
    id_token = tokens.get("id_token")
    if not id_token:
        raise SignOnFailed("The hospital's sign-on service sent no identity token.")
    claims = _checked(id_token, config=config, nonce=nonce)
    logged_in_at = claims.get("auth_time")
    if settings.KIDNEYWEB_OIDC_PROMPT_LOGIN and isinstance(logged_in_at, (int, float)) \
            and logged_in_at < started_at - LEEWAY:
        raise SignOnFailed("The hospital's sign-on service did not ask who is logging in (it passed on a session "
                           "open on this device): log in again.")
    username = claims.get(settings.KIDNEYWEB_OIDC_USERNAME_CLAIM)
    if not isinstance(username, str) or not username.strip():
        raise SignOnFailed(f"The hospital's sign-on service did not say who you are "
                           f"(no {settings.KIDNEYWEB_OIDC_USERNAME_CLAIM} in the token).")
    groups = claims.get(settings.KIDNEYWEB_OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]

    def text(claim: str) -> str:
        value = claims.get(claim)
        return value.strip() if isinstance(value, str) else ""

    return SignedOn(username=username.strip(), id_token=id_token,
                    groups=tuple(str(group) for group in groups if isinstance(group, (str, int))),
                    first_name=text("given_name"), last_name=text("family_name"), email=text("email"))


def end_session_url(*, id_token: str, post_logout_redirect_uri: str) -> str | None:
    """Where to send the browser for the provider to end its session too (RP-initiated logout 1.0), coming back to
    ``post_logout_redirect_uri``; None when the provider offers no such endpoint, or does not answer: kidneyweb's
    own logout is done either way and must not wait on it."""
    try:
        endpoint = configuration().get("end_session_endpoint")
    except SignOnFailed:
        logger.warning("Logout: the sign-on service did not answer; its session on this device stays open")
        return None
    if not isinstance(endpoint, str) or not endpoint:
        return None
    asked = {"id_token_hint": id_token, "post_logout_redirect_uri": post_logout_redirect_uri,
             "client_id": settings.KIDNEYWEB_OIDC_CLIENT_ID}
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urllib.parse.urlencode(asked)}"


# Signatures with the provider's published public keys only: never "none", nor a shared-secret HMAC.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


def _algorithms(config: dict[str, Any]) -> list[str]:
    offered = config.get("id_token_signing_alg_values_supported") or ["RS256"]
    return [alg for alg in offered if alg in ASYMMETRIC] or ["RS256"]


def _checked(id_token: str, *, config: dict[str, Any], nonce: str) -> dict[str, Any]:
    jwks_uri = config["jwks_uri"]
    with _lock:
        client = _jwks_clients.setdefault(jwks_uri, jwt.PyJWKClient(jwks_uri, cache_keys=True, timeout=TIMEOUT))
    try:
        key = client.get_signing_key_from_jwt(id_token)
        claims = jwt.decode(id_token, key.key, algorithms=_algorithms(config), audience=settings.KIDNEYWEB_OIDC_CLIENT_ID,
                            issuer=config["issuer"], leeway=LEEWAY, options={"require": ["exp", "iat", "iss", "aud",
                                                                                    "sub"]})
    except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
        logger.warning("Sign-on: identity token refused: %s", exc)
        raise SignOnFailed("The identity token from the hospital's sign-on service could not be trusted "
                           f"({exc}).") from exc
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SignOnFailed("The identity token was not made for this login; log in again.")
    return claims
