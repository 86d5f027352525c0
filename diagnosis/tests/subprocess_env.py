"""Run Django in a fresh process with a chosen environment (for settings and start-up behaviour)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

# Variables a test run sets for itself; a fresh process must not inherit them unless a test says so.
_TEST_ONLY = ("KIDNEYWEB_TEST_TMP", "KIDNEYWEB_VAR_DIR", "DJANGO_SETTINGS_MODULE")
_APP_VARS = (
    "DJANGO_DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "REDIS_URL",
    "AWS_STORAGE_BUCKET_NAME", "KIDNEYWEB_MEDIA_ROOT", "KIDNEYWEB_MODEL_PATH", "DJANGO_SECURE_SSL_REDIRECT",
    "DJANGO_BEHIND_TLS_PROXY",
)


def clean_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY + _APP_VARS}
    env["KIDNEYWEB_VAR_DIR"] = str(var_dir)
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
