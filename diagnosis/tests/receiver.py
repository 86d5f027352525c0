"""A real HTTP server on localhost that records what is POSTed to it: the hospital system receiving
result notifications, or an archive's DICOMweb store. It answers with the statuses it is given, in order (then
200); an answer given as (status, body) sends that body too. Given a server-side TLS context, it speaks https (and
records whom the client's certificate names, when the context asks for one)."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    client: str = ""  # the common name of the client's TLS certificate

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    answers: list[int | tuple[int, bytes]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    # Set: only requests with "Authorization: Bearer <one of these>" are taken; others are answered 401.
    bearer_tokens: set[str] | None = None


def start(tls: ssl.SSLContext | None = None) -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            if tls is not None:
                # Here, in the connection's own thread, so that a refused client hears why (a TLS alert).
                try:
                    self.request.do_handshake()
                except (ssl.SSLError, OSError):
                    self.request.close()
                    raise
            super().setup()

        def _refused(self) -> bool:
            if receiver.bearer_tokens is None:
                return False
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() == "bearer" and token in receiver.bearer_tokens:
                return False
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def do_GET(self) -> None:  # noqa: N802 (http.server's name): a DICOMweb search (QIDO-RS) finds nothing
            if self._refused():
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self._refused():
                return
            peer = self.connection.getpeercert() if tls else None
            client = dict(pair[0] for pair in peer["subject"]).get("commonName", "") if peer else ""
            receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, client))
            status = receiver.answers.pop(0) if receiver.answers else 200
            status, answer = status if isinstance(status, tuple) else (status, b"")
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            if answer:
                self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            receiver.arrived.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        # A refused handshake (no or a foreign client certificate) ends that connection, not the server.
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    receiver.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}/kidneyweb/results"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
