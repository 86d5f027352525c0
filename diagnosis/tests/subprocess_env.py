"""Run Django in a fresh process with a chosen environment (for settings and start-up behaviour)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

# Whatever configures the app in the caller's environment (or the test run's own variables) must not
# leak into a process whose configuration a test chooses.
_PREFIXES = ("DJANGO_", "KIDNEYWEB_", "AWS_", "CELERY_")
_NAMES = ("SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "REDIS_URL", "TIME_ZONE", "DB_CONN_MAX_AGE")


def clean_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES) and k not in _NAMES}
    env["KIDNEYWEB_VAR_DIR"] = str(var_dir)
    env["KIDNEYWEB_MLRUNS_DIR"] = str(var_dir / "mlruns")  # not the checkout's, which a backup would copy
    env["DJANGO_SETTINGS_MODULE"] = "kidneyweb.settings"
    env.update(overrides)
    return env


def run_python(code: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_manage(args: list[str], env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
        timeout=timeout,
    )
