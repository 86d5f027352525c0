"""The web server's access log, as gunicorn.conf.py sets it for every way of starting the web server."""

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.conf import settings

from .subprocess_env import clean_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_access_log_leaves_out_query_strings_and_referrers_that_carry_patient_names(tmp_path):
    port = free_port()
    env = clean_env(tmp_path)
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "kidneyweb.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--config", "gunicorn.conf.py"],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/patients/?q=Jane+Probe-Doe",
                                         headers={"Referer": f"http://127.0.0.1:{port}/patients/?q=MRN-4711"})
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(request, timeout=5)
                break
            except urllib.error.HTTPError:
                break  # any answer is logged
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.5)
        time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)

    text = log.read_text()
    assert '"GET /patients/ HTTP/1.1"' in text, text[-2000:]
    assert "Jane" not in text and "MRN-4711" not in text
