"""Docker HEALTHCHECK: exit 0 when GET /healthz answers 200 (database and broker reachable).

Sends the first ALLOWED_HOSTS entry as Host header, so Django's host check passes whatever name the
site is served under. /healthz is exempt from the HTTPS redirect, so plain HTTP inside the container works.
"""

import os
import sys
import urllib.request

port = os.environ.get("PORT", "8000")
hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
host = next((h.lstrip(".") for h in hosts if h != "*"), "localhost")

request = urllib.request.Request(
    f"http://127.0.0.1:{port}/healthz",
    headers={"Host": host},
)
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # any failure means unhealthy; say why in `docker inspect`
    print(f"healthz failed: {exc}", file=sys.stderr)
    sys.exit(1)
