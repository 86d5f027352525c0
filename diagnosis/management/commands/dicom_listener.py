"""Receive CT slices by DICOM's own protocol (C-STORE) until stopped: ``diagnosis.dicom_listener``."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from diagnosis import dicom_listener


class Command(BaseCommand):
    help = ("Listen for CT slices sent by DICOM C-STORE (and C-ECHO) as KIDNEYWEB_DICOM_AE_TITLE, from the AE titles "
            "of KIDNEYWEB_DICOM_PEERS, each filed as its kidneyweb account; until SIGTERM or Ctrl-C.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=None, help="Default: KIDNEYWEB_DICOM_LISTEN_PORT (11112).")
        parser.add_argument("--host", default="0.0.0.0", help="The address to listen on (default: all).")

    def handle(self, *args, port: int | None, host: str, **options) -> None:
        try:
            peers = dicom_listener.peers_parse(settings.KIDNEYWEB_DICOM_PEERS)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if not peers:
            raise CommandError("No sender may connect: set KIDNEYWEB_DICOM_PEERS, e.g. PACS=pacs-router (the AE "
                               "title and the kidneyweb account its slices are filed as).")
        missing = [peer for peer in peers if dicom_listener.account_of(peer) is None]
        if missing:
            raise CommandError("; ".join(f"{peer.ae_title}: no active kidneyweb account {peer.username!r} in an "
                                         "organization (manage.py create_api_client)" for peer in missing))
        port = port or settings.KIDNEYWEB_DICOM_LISTEN_PORT
        tls, over = None, "plain DIMSE"
        if settings.KIDNEYWEB_DICOM_TLS_CERT or settings.KIDNEYWEB_DICOM_TLS_KEY:
            try:
                tls = dicom_listener.tls_context(cert=settings.KIDNEYWEB_DICOM_TLS_CERT,
                                                 key=settings.KIDNEYWEB_DICOM_TLS_KEY,
                                                 client_ca=settings.KIDNEYWEB_DICOM_TLS_CLIENT_CA)
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from None
            over = ("TLS, senders' certificates required" if settings.KIDNEYWEB_DICOM_TLS_CLIENT_CA
                    else "TLS")
        server = dicom_listener.server(ae_title=settings.KIDNEYWEB_DICOM_AE_TITLE, peers=peers, port=port, host=host,
                                       tls=tls)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        self.stdout.write(f"Listening on {host}:{port} ({over}) as {settings.KIDNEYWEB_DICOM_AE_TITLE} for "
                          f"{', '.join(f'{p.ae_title} (as {p.username})' for p in peers)}", ending="\n")
        self.stdout.flush()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
