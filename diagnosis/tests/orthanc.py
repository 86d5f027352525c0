"""A real archive (PACS) for the tests: Orthanc with its DICOMweb plugin, as Debian packages it, started on a free
port with its own storage and a user name and password, so that results are sent to it as to a hospital's."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USERNAME, PASSWORD = "kidneyweb", "archive-password"
AE_TITLE = "ORTHANC"  # its own, for DICOM's network protocol (DIMSE)


def missing() -> str | None:
    """Why Orthanc cannot run here, or None."""
    if shutil.which("Orthanc") is None:
        return "Orthanc is not installed (Debian package orthanc)"
    if not PLUGIN.is_file():
        return "Orthanc's DICOMweb plugin is not installed (Debian package orthanc-dicomweb)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Orthanc:
    base: str  # its REST API
    process: subprocess.Popen
    dicom_port: int
    ca: Path | None = None  # the certificate of its DICOM TLS port (start_tls), for kidneyweb to trust

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicom-web"

    @property
    def dimse(self) -> str:
        """Its address for DICOM's network protocol, as an administrator enters it."""
        return f"dicom://{AE_TITLE}@127.0.0.1:{self.dicom_port}"

    def get(self, path: str) -> Any:
        return self._call(urllib.request.Request(self.base + path))

    def store(self, instance: bytes) -> None:
        """Store a DICOM instance as a modality would send it (Orthanc's own REST upload)."""
        self._call(urllib.request.Request(self.base + "/instances", data=instance, method="POST"))

    def _call(self, request: urllib.request.Request) -> Any:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def instance_tags(self, sop_instance_uid: str) -> dict[str, Any] | None:
        """The stored instance's main tags by name, or None when the archive does not hold it."""
        found = [i for i in self.get("/instances?expand") if i["MainDicomTags"].get("SOPInstanceUID") == sop_instance_uid]
        if not found:
            return None
        return self.get(f"/instances/{found[0]['ID']}/simplified-tags")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_tls(directory: Path, *, client_ca: Path | None = None) -> Orthanc:
    """An Orthanc whose DICOM port takes TLS only, with a certificate of its own CA (``ca``, to trust), admitting
    only clients with a certificate ``client_ca`` issued when given."""
    from . import certificates

    cert, key = certificates.issue("test archive", ca=True, host="127.0.0.1").write(directory, "archive")
    server = start(directory, tls=(cert, key), client_ca=client_ca)
    server.ca = cert
    return server


def start(directory: Path, *, tls: tuple[Path, Path] | None = None, client_ca: Path | None = None) -> Orthanc:
    """Orthanc on free ports; with ``tls`` (its certificate and key files), its DICOM port takes TLS only; with
    ``client_ca`` too, only from clients presenting a certificate that CA issued (mutual TLS)."""
    port, dicom_port = _free_port(), _free_port()
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = directory / "orthanc.json"
    config.write_text(json.dumps({
        "Name": "kidneyweb-tests", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
        "HttpPort": port, "RemoteAccessAllowed": False,
        # Stores from any AE title, as an archive that lets the hospital's devices in; refuses a wrong called one.
        "DicomServerEnabled": True, "DicomPort": dicom_port, "DicomAet": AE_TITLE, "DicomCheckCalledAet": True,
        "DicomAlwaysAllowStore": True, "DicomAlwaysAllowEcho": True,
        **({"DicomTlsEnabled": True, "DicomTlsCertificate": str(tls[0]), "DicomTlsPrivateKey": str(tls[1]),
            "DicomTlsTrustedCertificates": str(client_ca or tls[0]),
            "DicomTlsRemoteCertificateRequired": client_ca is not None} if tls else {}),
        "AuthenticationEnabled": True, "RegisteredUsers": {USERNAME: PASSWORD},
        "Plugins": [str(PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }))
    log = (directory / "orthanc.log").open("wb")
    process = subprocess.Popen(["Orthanc", str(config)], stdout=log, stderr=subprocess.STDOUT)
    orthanc = Orthanc(base=f"http://127.0.0.1:{port}", process=process, dicom_port=dicom_port)
    deadline = time.monotonic() + 30
    while True:
        try:
            orthanc.get("/system")
            return orthanc
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                orthanc.stop()
                raise RuntimeError(f"Orthanc did not start: see {directory / 'orthanc.log'}") from None
            time.sleep(0.2)
