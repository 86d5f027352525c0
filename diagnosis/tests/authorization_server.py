"""A real OAuth 2.0 authorization server on localhost for the client credentials grant (RFC 6749 4.4), as Keycloak
or a cloud identity provider answers it: tokens for one client id and secret, errors as RFC 6749 5.2 words them."""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class AuthorizationServer:
    url: str
    client_id: str
    client_secret: str
    scope: str = ""
    lifetime: int = 300  # seconds, as expires_in
    issued: list[str] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    down: bool = False  # answers 503 meanwhile


def start(*, client_id: str, client_secret: str, scope: str = "") -> tuple[AuthorizationServer, ThreadingHTTPServer]:
    server_state = AuthorizationServer(url="", client_id=client_id, client_secret=client_secret, scope=scope)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            server_state.requests.append(form)
            if server_state.down:
                return self._answer(503, {"error": "temporarily_unavailable"})
            if form.get("grant_type") != "client_credentials":
                return self._answer(400, {"error": "unsupported_grant_type"})
            if (form.get("client_id"), form.get("client_secret")) != (server_state.client_id,
                                                                      server_state.client_secret):
                return self._answer(401, {"error": "invalid_client",
                                          "error_description": "Invalid client or Invalid client credentials"})
            if server_state.scope and form.get("scope") != server_state.scope:
                return self._answer(400, {"error": "invalid_scope", "error_description": "Invalid scopes"})
            token = secrets.token_urlsafe(24)
            server_state.issued.append(token)
            return self._answer(200, {"access_token": token, "token_type": "Bearer",
                                      "expires_in": server_state.lifetime})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}/realms/pacs/protocol/openid-connect/token"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server_state, server
