"""A real OpenID Connect provider on localhost, as Keycloak or Entra ID answers the authorization code flow with
PKCE: discovery, an authorization endpoint that sends the browser back with a code for the user said to be logged
in there (its own login page is not kidneyweb's to test), a token endpoint for one confidential client that
checks the code, redirect URI and code verifier, RS256 ID tokens whose keys it publishes, and a logout endpoint
(RP-initiated logout) that knows the tokens it issued. ``forge`` makes it
misbehave the ways a test needs (another audience, an expired token, another key, another nonce)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass
class Provider:
    url: str
    client_id: str
    client_secret: str
    user: str | None = None  # who is logged in at the provider; None: it answers access_denied
    claim: str = "preferred_username"
    groups: list[str] | None = None  # the groups claim of its tokens; None: none sent
    forge: str = ""  # "", "audience", "expired", "key", "nonce", "session" (an old login passed on)
    prompts: list[str] = field(default_factory=list)  # the prompt each authorization request asked for
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    id_tokens: list[str] = field(default_factory=list)  # those it issued
    end_session: bool = True  # whether it offers RP-initiated logout (end_session_endpoint)
    logouts: list[dict[str, str]] = field(default_factory=list)  # each logout request's parameters


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def start(*, client_id: str, client_secret: str) -> tuple[Provider, ThreadingHTTPServer]:
    key, other_key = _key(), _key()
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update(kid="kidneyweb-test-1", use="sig", alg="RS256")
    state = Provider(url="", client_id=client_id, client_secret=client_secret)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            params = dict(urllib.parse.parse_qsl(query))
            if path == "/.well-known/openid-configuration":
                configuration = {
                    "issuer": state.url, "authorization_endpoint": f"{state.url}/authorize",
                    "token_endpoint": f"{state.url}/token", "jwks_uri": f"{state.url}/jwks",
                    "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"]}
                if state.end_session:
                    configuration["end_session_endpoint"] = f"{state.url}/logout"
                return self._json(200, configuration)
            if path == "/jwks":
                return self._json(200, {"keys": [public]})
            if path == "/authorize":
                back = params["redirect_uri"]
                state.prompts.append(params.get("prompt", ""))
                if params.get("client_id") != state.client_id or params.get("code_challenge_method") != "S256":
                    answer = {"error": "invalid_request", "state": params.get("state", "")}
                elif state.user is None:
                    answer = {"error": "access_denied", "error_description": "The user cancelled the login.",
                              "state": params.get("state", "")}
                else:
                    code = secrets.token_urlsafe(16)
                    state.codes[code] = {"user": state.user, "nonce": params.get("nonce", ""),
                                         "challenge": params.get("code_challenge", ""), "redirect_uri": back}
                    answer = {"code": code, "state": params.get("state", "")}
                self.send_response(302)
                self.send_header("Location", f"{back}{'&' if '?' in back else '?'}{urllib.parse.urlencode(answer)}")
                self.end_headers()
                return None
            if path == "/logout" and state.end_session:
                # RP-initiated logout: it ends its session for the token's user, then sends the browser back.
                state.logouts.append(params)
                known = params.get("id_token_hint") in state.id_tokens
                if known and params.get("post_logout_redirect_uri"):
                    self.send_response(302)
                    self.send_header("Location", params["post_logout_redirect_uri"])
                    self.end_headers()
                    return None
                return self._json(200 if known else 400, {"logged_out": known})
            return self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()))
            state.token_requests.append(form)
            scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
            client = base64.b64decode(encoded).decode() if scheme == "Basic" else ":"
            if client != f"{state.client_id}:{state.client_secret}":
                return self._json(401, {"error": "invalid_client"})
            issued = state.codes.pop(form.get("code", ""), None)  # a code works once
            challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                                                 ).rstrip(b"=").decode()
            if (issued is None or issued["redirect_uri"] != form.get("redirect_uri")
                    or issued["challenge"] != challenge):
                return self._json(400, {"error": "invalid_grant"})
            now = int(time.time())
            claims = {"iss": state.url, "sub": f"sub-{issued['user']}", "aud": state.client_id, "iat": now,
                      "exp": now + 300, "nonce": issued["nonce"], state.claim: issued["user"],
                      "auth_time": now - 3600 if state.forge == "session" else now}
            if state.groups is not None:
                claims.update(groups=list(state.groups), given_name="Carol", family_name="Jones",
                              email=f"{issued['user']}@hospital.example.org")
            if state.forge == "audience":
                claims["aud"] = "another-application"
            elif state.forge == "expired":
                claims.update(iat=now - 3600, exp=now - 1800)
            elif state.forge == "nonce":
                claims["nonce"] = "another-login"
            signing = other_key if state.forge == "key" else key
            token = jwt.encode(claims, signing, algorithm="RS256", headers={"kid": "kidneyweb-test-1"})
            state.id_tokens.append(token)
            return self._json(200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                    "expires_in": 300, "id_token": token})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server
