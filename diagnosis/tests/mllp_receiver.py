"""A real MLLP listener on localhost, as a hospital's interface engine runs one: it reads each framed HL7 message,
records it, and acknowledges it (ACK with MSA) with the codes it is given, in order (then AA); "close" hangs up
without an answer, "silent" keeps the connection open without one, and "other" acknowledges another message's
control id. Given a server-side TLS context, it speaks MLLP over TLS."""

from __future__ import annotations

import socketserver
import ssl
import threading
from dataclasses import dataclass, field

START, END = b"\x0b", b"\x1c\r"


@dataclass
class Listener:
    address: str = ""
    answers: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def ack(self, message: str, code: str) -> bytes:
        msh = message.split("\r", 1)[0].split("|")
        control_id = msh[9] if len(msh) > 9 else ""
        if code == "other":
            code, control_id = "AA", "0" * 20
        text = "Patient not found" if code in ("AE", "AR") else ""
        return (f"MSH|^~\\&|ENGINE|HOSPITAL|{msh[2]}|{msh[3]}|20261207120000||ACK^R01^ACK|ACK{control_id[:17]}|P|2.5.1"
                f"\rMSA|{code}|{control_id}|{text}\r").encode()


def start(tls: ssl.SSLContext | None = None) -> tuple[Listener, socketserver.ThreadingTCPServer]:
    listener = Listener()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connection = self.request
            if tls is not None:
                try:
                    connection = tls.wrap_socket(connection, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client refused the listener's certificate
            buffer = b""
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while END in buffer:
                    frame, buffer = buffer.split(END, 1)
                    message = frame.removeprefix(START).decode("utf-8")
                    listener.received.append(message)
                    code = listener.answers.pop(0) if listener.answers else "AA"
                    listener.arrived.set()
                    if code == "close":
                        return
                    if code == "silent":
                        continue
                    connection.sendall(START + listener.ack(message, code) + END)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    listener.address = f"{'mllps' if tls else 'mllp'}://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return listener, server
