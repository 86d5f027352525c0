"""Test settings: the real settings with throwaway state.

Everything a test run writes (SQLite test database, media, broker folders) goes into one temporary
folder named by KIDNEYWEB_TEST_TMP. The first process creates it and exports the variable, so a Celery
worker started by a test inherits the same folder and so the same database, media and broker.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

if not os.environ.get("KIDNEYWEB_TEST_TMP"):
    _created = tempfile.mkdtemp(prefix="kidneyweb-test-")
    os.environ["KIDNEYWEB_TEST_TMP"] = _created
    atexit.register(shutil.rmtree, _created, ignore_errors=True)
TEST_TMP_DIR = Path(os.environ["KIDNEYWEB_TEST_TMP"])
os.environ["KIDNEYWEB_VAR_DIR"] = str(TEST_TMP_DIR / "var")
os.environ.pop("KIDNEYWEB_MEDIA_ROOT", None)
# Backups copy MLflow's records: the test run's own, never the checkout's.
os.environ["KIDNEYWEB_MLRUNS_DIR"] = str(TEST_TMP_DIR / "mlruns")
# Tests never talk to S3; the S3 configuration is tested on its own.
os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)
# Backups are unencrypted unless a test sets a key of its own.
os.environ.pop("KIDNEYWEB_BACKUP_KEY", None)
os.environ.pop("KIDNEYWEB_BACKUP_PREVIOUS_KEYS", None)
# Lets the suite run even where the shell holds production values such as DJANGO_DEBUG=0.
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-any-deployment-0123456789")

from .settings import *  # noqa: E402,F401,F403
from .settings import DATABASES, REDIS_URL  # noqa: E402

STATIC_ROOT = TEST_TMP_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# The test client speaks plain HTTP.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": MEDIA_URL},  # noqa: F405
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so a worker process started by a test can open the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_TMP_DIR / "test-db.sqlite3")}

if REDIS_URL:
    # Keys of this run apart from a developer's worker and from other runs on the same Redis.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
        "global_keyprefix": f"{TEST_TMP_DIR.name}:",
    }

# Counts kept in this process only: a test never sees another run's requests, and clearing them between
# tests never touches the broker's Redis database.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING["root"]["level"] = "WARNING"  # noqa: F405
