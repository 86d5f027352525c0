"""Settings for kidneyweb, read from environment variables.

One module serves development, tests (settings_test imports it) and production. With no environment
at all the app runs on SQLite and an embedded Celery broker (kombu's filesystem transport), so a fresh
checkout needs no server; DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mlcore import SHIPPED_MODEL

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    value = value.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off).")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# Runtime state (SQLite file, uploaded media, the embedded broker's queue folders) lives here, outside
# the source tree's tracked files.
VAR_DIR = Path(os.environ.get("KIDNEYWEB_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Core -------------------------------------------------------------------------------------------

# Development is the default so that `make run` works on a fresh machine; production sets DJANGO_DEBUG=0.
DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
# The placeholder of .env.example counts as unset: a copied .env must not ship a known key.
if not SECRET_KEY or SECRET_KEY.startswith("change-me"):
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (DJANGO_DEBUG=0), to a long random value, not the "
            ".env.example placeholder. Generate one with: python -c "
            "'from django.core.management.utils import get_random_secret_key as g; print(g())'"
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Two-factor authentication with an authenticator app (TOTP): replay and guessing protection built in.
    "django_otp",
    # Its TOTP checking is used by diagnosis.Authenticator, whose secret is sealed; its own device model is not.
    "django_otp.plugins.otp_totp",
    "diagnosis",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "kidneyweb.middleware.IdleLogoutMiddleware",
    "diagnosis.middleware.AccountGateMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "kidneyweb.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "kidneyweb.urls"
WSGI_APPLICATION = "kidneyweb.wsgi.application"
ASGI_APPLICATION = "kidneyweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the Celery worker write to one SQLite file from separate processes:
    # IMMEDIATE transactions take the write lock up front (no upgrade deadlocks), WAL lets readers
    # run beside a writer, and the timeout makes a writer wait instead of failing at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Encrypts `manage.py backup` (AES-256-GCM); restoring needs the same key. Make one with
# `manage.py backup --generate-key` and keep it apart from the backups (a password manager, a secret store).
KIDNEYWEB_BACKUP_KEY = os.environ.get("KIDNEYWEB_BACKUP_KEY", "")
# Keys replaced by a new KIDNEYWEB_BACKUP_KEY (comma-separated): restore still reads backups made with them.
KIDNEYWEB_BACKUP_PREVIOUS_KEYS = env_list("KIDNEYWEB_BACKUP_PREVIOUS_KEYS", [])

# Seals the credentials kidneyweb must send on (the archive's password, the notification secret) in the database
# (diagnosis.sealed). Empty: a key derived from SECRET_KEY. A key of its own (`manage.py reseal_credentials
# --generate-key`) lets SECRET_KEY change without them; after changing either, `manage.py reseal_credentials`.
KIDNEYWEB_CREDENTIALS_KEY = os.environ.get("KIDNEYWEB_CREDENTIALS_KEY", "")
# Keys replaced by a new KIDNEYWEB_CREDENTIALS_KEY (comma-separated): still read until resealed.
KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS = env_list("KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS", [])
# Refused at start-up, not at the first archive send: a mistyped key would otherwise surface as failed deliveries.
for _name, _keys in (("KIDNEYWEB_CREDENTIALS_KEY", [KIDNEYWEB_CREDENTIALS_KEY] if KIDNEYWEB_CREDENTIALS_KEY else []),
                     ("KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS", KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS)):
    for _key in _keys:
        try:
            _valid = len(base64.urlsafe_b64decode(_key.strip().encode("ascii"))) == 32
        except (binascii.Error, UnicodeEncodeError, ValueError):
            _valid = False
        if not _valid:
            raise ImproperlyConfigured(f"{_name} holds something that is not a key: make one with `manage.py "
                                       "reseal_credentials --generate-key` (44 characters of URL-safe base64).")
# Earlier SECRET_KEYs: sessions and password-reset links signed with them stay valid, and credentials sealed with
# a key derived from them still open.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])

# --- Auth -------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # Longer than Django's 8: most logins here have no second factor (NIST SP 800-63B asks 15 of those).
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": env_int("KIDNEYWEB_PASSWORD_MIN_LENGTH", 12)}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "diagnosis:home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation ---------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and media -------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Scan images are patient data: they are never served from MEDIA_URL, only through views that check
# the user's organization (diagnosis.views.scan_image).
MEDIA_ROOT = Path(os.environ.get("KIDNEYWEB_MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_URL = "/media/"

AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
if AWS_STORAGE_BUCKET_NAME:
    # Credentials come from the usual AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance
    # role, ...). Objects stay private; the app streams them to authorised users.
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "location": os.environ.get("AWS_S3_LOCATION", ""),
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": MEDIA_URL},
    }
    MEDIA_ROOT.mkdir(parents=True, exist_ok=True)

STORAGES = {
    "default": _default_storage,
    # Hashed names need `collectstatic`; with DEBUG on WhiteNoise serves straight from the finders.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Uploads and the model --------------------------------------------------------------------------

KIDNEYWEB_MAX_UPLOAD_BYTES = env_int("KIDNEYWEB_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
# One DICOMweb store request (several instances) is held in memory while it is filed: archives send big studies
# in several requests when told so.
KIDNEYWEB_DICOMWEB_MAX_BYTES = env_int("KIDNEYWEB_DICOMWEB_MAX_BYTES", 100 * 1024 * 1024)
KIDNEYWEB_MAX_IMAGE_PIXELS = env_int("KIDNEYWEB_MAX_IMAGE_PIXELS", 4096 * 4096)
# A DICOM slice whose header names another patient ID than the chosen patient's MRN is refused: the
# classic wrong-patient upload. Off only where the archive's patient IDs are not the MRNs kept here.
KIDNEYWEB_DICOM_PATIENT_ID_CHECK = env_bool("KIDNEYWEB_DICOM_PATIENT_ID_CHECK", True)
# The API's schema and interactive documentation list every endpoint of a clinical system: for signed-in
# users (a web login, or a token for the schema) unless a deployment chooses to publish them.
KIDNEYWEB_API_DOCS_PUBLIC = env_bool("KIDNEYWEB_API_DOCS_PUBLIC", False)
KIDNEYWEB_MODEL_PATH = Path(os.environ.get("KIDNEYWEB_MODEL_PATH") or BASE_DIR / SHIPPED_MODEL)
# A result whose top probability is below this is marked "needs review" and never shown as a plain
# diagnosis, unless the model card carries its own calibrated calibration.confidence_threshold.
try:
    KIDNEYWEB_CONFIDENCE_THRESHOLD = float(os.environ.get("KIDNEYWEB_CONFIDENCE_THRESHOLD") or 0.7)
except ValueError:
    raise ImproperlyConfigured(
        f"KIDNEYWEB_CONFIDENCE_THRESHOLD={os.environ['KIDNEYWEB_CONFIDENCE_THRESHOLD']!r} is not a number."
    ) from None
if not 0.0 < KIDNEYWEB_CONFIDENCE_THRESHOLD <= 1.0:
    raise ImproperlyConfigured(
        f"KIDNEYWEB_CONFIDENCE_THRESHOLD={KIDNEYWEB_CONFIDENCE_THRESHOLD} must be above 0 and at most 1."
    )
# Django buffers bigger uploads to a temporary file instead of memory; a little over the limit so the
# size check can still give its own message.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A CT series often has more slices than Django's default 100 files, and the upload form without
# JavaScript sends them in one request (the batch upload page sends one file per request).
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("KIDNEYWEB_MAX_FILES_PER_UPLOAD", 500)

# --- Retraining and promotion (the training app) ---------------------------------------------------

# Trained models and their cards; a worker serving inference must see the same folder (a shared volume).
KIDNEYWEB_MODELS_DIR = Path(os.environ.get("KIDNEYWEB_MODELS_DIR") or VAR_DIR / "models")
# Per-run working folders: pipeline artifacts, the reviewed-scan export.
KIDNEYWEB_TRAINING_DIR = Path(os.environ.get("KIDNEYWEB_TRAINING_DIR") or VAR_DIR / "training")
# The hyper-parameters a run starts from and the pipeline's paths, as for `dvc repro`.
KIDNEYWEB_TRAINING_PARAMS = Path(os.environ.get("KIDNEYWEB_TRAINING_PARAMS") or BASE_DIR / "params.yaml")
KIDNEYWEB_TRAINING_CONFIG = Path(os.environ.get("KIDNEYWEB_TRAINING_CONFIG") or BASE_DIR / "config.yaml")
# The developer data set; empty means config.yaml's data_dir (relative to the project directory).
KIDNEYWEB_TRAINING_DATA_DIR = os.environ.get("KIDNEY_DATA_DIR", "")
# Where MLflow keeps its records when MLFLOW_TRACKING_URI names no server (the worker's ./mlruns): backups copy it.
KIDNEYWEB_MLRUNS_DIR = Path(os.environ.get("KIDNEYWEB_MLRUNS_DIR") or BASE_DIR / "mlruns")
# Log runs to MLflow (MLFLOW_TRACKING_URI, default ./mlruns of the worker's working directory).
KIDNEYWEB_TRAINING_TRACK = env_bool("KIDNEYWEB_TRAINING_TRACK", True)
# A candidate may be at most this much worse than the active model on macro-F1 and on every class's
# recall (on the locked test series) to be promoted without an administrator's written reason.
KIDNEYWEB_PROMOTION_MARGIN = env_float("KIDNEYWEB_PROMOTION_MARGIN", 0.02)
# A running run writes a heartbeat this often; one silent for KIDNEYWEB_TRAINING_STALE_SECONDS is
# taken for a run whose worker died, and is marked failed.
KIDNEYWEB_TRAINING_HEARTBEAT_SECONDS = env_int("KIDNEYWEB_TRAINING_HEARTBEAT_SECONDS", 10)
KIDNEYWEB_TRAINING_STALE_SECONDS = env_int("KIDNEYWEB_TRAINING_STALE_SECONDS", 180)
# How often Celery beat (run by the inference worker, `--beat`) looks for such runs.
KIDNEYWEB_TRAINING_SWEEP_SECONDS = env_int("KIDNEYWEB_TRAINING_SWEEP_SECONDS", 60)
KIDNEYWEB_TRAINING_TIME_LIMIT_SECONDS = env_int("KIDNEYWEB_TRAINING_TIME_LIMIT_SECONDS", 24 * 3600)
# A diagnosis queued or running this long without a result has lost its task (Redis restarted, a
# worker was killed mid-task): Celery beat sends it again every KIDNEYWEB_PREDICTION_SWEEP_SECONDS. Longer
# than a diagnosis may run (its hard time limit is 360 s) and than a normal backlog takes.
KIDNEYWEB_PREDICTION_STALE_SECONDS = env_int("KIDNEYWEB_PREDICTION_STALE_SECONDS", 600)
KIDNEYWEB_PREDICTION_SWEEP_SECONDS = env_int("KIDNEYWEB_PREDICTION_SWEEP_SECONDS", 120)
# How often Celery beat judges each organization's recent out-of-scope share against the active model's card
# (services.inputs_alerts_judge). The share is of four weeks of uploads: an hour late changes nothing.
KIDNEYWEB_INPUTS_JUDGE_SECONDS = env_int("KIDNEYWEB_INPUTS_JUDGE_SECONDS", 3600)
# A patient's whole-record export (a ZIP the worker builds) is deleted this long after it is ready: a copy of
# patient data kept no longer than it takes to hand it over. One still building after
# KIDNEYWEB_RECORD_EXPORT_SECONDS is stopped, with that reason.
KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS = env_int("KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS", 24)
KIDNEYWEB_RECORD_EXPORT_SECONDS = env_int("KIDNEYWEB_RECORD_EXPORT_SECONDS", 3600)
# An erasure asks the hospital's archive to delete the AI results it was sent; its notes keep the patient's name and
# ID until the archive stores them. After this many days kidneyweb stops asking and forgets them, so that an archive
# that never answers does not keep the person's details here beyond the month an erasure request must be met in.
KIDNEYWEB_ERASURE_ARCHIVE_DAYS = env_int("KIDNEYWEB_ERASURE_ARCHIVE_DAYS", 30)

# GET /metrics (Prometheus' text format) answers a scraper that sends this as a bearer token; unset: off (404).
KIDNEYWEB_METRICS_TOKEN = os.environ.get("KIDNEYWEB_METRICS_TOKEN", "")

# --- Celery -----------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
# The cache holds the API's request counts (KIDNEYWEB_API_RATE): in Redis they are shared by every web
# process; without it each process counts its own.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "kidneyweb"}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
        # Longer than the slowest task (a training run's hard time limit) so that acks_late never hands a
        # task that is still running to a second worker. A diagnosis whose worker was killed does not wait
        # this long: the sweep for lost diagnoses sends it again (KIDNEYWEB_PREDICTION_STALE_SECONDS).
        "visibility_timeout": KIDNEYWEB_TRAINING_TIME_LIMIT_SECONDS + 3600,
        "socket_connect_timeout": 5,
    }
else:
    # Web and worker on one machine share these folders: a broker with no server. Producer and
    # consumer use the same folder for in and out, so whatever one writes the other reads.
    BROKER_DIR = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Results live in the database (Prediction rows), so Celery keeps none.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ROUTES = {
    "diagnosis.tasks.predict_scan": {"queue": "inference"},
    # The worker that diagnoses has the model loaded, so it also draws heat maps on request.
    "diagnosis.tasks.explain_class": {"queue": "inference"},
    # The sweep for runs whose worker died must not wait behind a run on the training queue.
    "training.tasks.fail_orphaned_runs": {"queue": "celery"},
    "diagnosis.tasks.resend_lost_predictions": {"queue": "celery"},
    "diagnosis.tasks.judge_inputs": {"queue": "celery"},
    # Notifications wait on other hospitals' servers: never in front of a diagnosis.
    "diagnosis.tasks.deliver_webhook": {"queue": "celery"},
    "diagnosis.tasks.deliver_to_pacs": {"queue": "celery"},
    "diagnosis.tasks.deliver_hl7": {"queue": "celery"},
    "diagnosis.tasks.remove_erased_files": {"queue": "celery"},
    # A whole-record export takes minutes for a large record: on a queue and a worker of its own, so that no
    # diagnosis waits behind it, nor it behind a training run of hours.
    "diagnosis.tasks.build_record_export": {"queue": "exports"},
    # Training runs for minutes to hours: a queue of its own, consumed by a worker of its own
    # (scripts/worker.sh, docker-compose.yml), so a diagnosis never waits behind a run.
    "training.tasks.*": {"queue": "training"},
}
CELERY_BEAT_SCHEDULE = {
    "fail-orphaned-training-runs": {
        "task": "training.tasks.fail_orphaned_runs",
        "schedule": float(KIDNEYWEB_TRAINING_SWEEP_SECONDS),
        # A sweep older than the next one is worth nothing.
        "options": {"expires": float(KIDNEYWEB_TRAINING_SWEEP_SECONDS)},
    },
    "resend-lost-predictions": {
        "task": "diagnosis.tasks.resend_lost_predictions",
        "schedule": float(KIDNEYWEB_PREDICTION_SWEEP_SECONDS),
        "options": {"expires": float(KIDNEYWEB_PREDICTION_SWEEP_SECONDS)},
    },
    "judge-inputs": {
        "task": "diagnosis.tasks.judge_inputs",
        "schedule": float(KIDNEYWEB_INPUTS_JUDGE_SECONDS),
        "options": {"expires": float(KIDNEYWEB_INPUTS_JUDGE_SECONDS)},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- REST API ---------------------------------------------------------------------------------------

# Requests per API token (or logged-in user) and time unit, as DRF writes it: a runaway integration
# polling in a loop gets 429 with Retry-After instead of slowing diagnosis for everyone.
KIDNEYWEB_API_RATE = os.environ.get("KIDNEYWEB_API_RATE", "1200/minute")

# The identifier system of patients' medical record numbers in FHIR exports, as the hospital's own
# systems name it (often an OID, urn:oid:...); {organization} stands for the organization's slug.
KIDNEYWEB_FHIR_MRN_SYSTEM = os.environ.get("KIDNEYWEB_FHIR_MRN_SYSTEM") or "urn:kidneyweb:{organization}:mrn"
# The same for the accession numbers of imaging orders (a DICOM slice's AccessionNumber), as the RIS names them.
KIDNEYWEB_FHIR_ACCESSION_SYSTEM = (os.environ.get("KIDNEYWEB_FHIR_ACCESSION_SYSTEM")
                                   or "urn:kidneyweb:{organization}:accession")

REST_FRAMEWORK = {
    # Token first: an anonymous request then gets 401 with a WWW-Authenticate header, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "diagnosis.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "diagnosis.api.permissions.HasMembership",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "diagnosis.api.exceptions.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["diagnosis.api.throttling.ApiRateThrottle"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "kidneyweb API",
    "DESCRIPTION": (
        "Register patients, upload kidney CT slices (PNG or JPEG) and read the asynchronous diagnosis "
        "(Cyst, Normal, Stone or Tumor). Authenticate with `Authorization: Token <key>` (or `Bearer <key>`); a "
        "token is issued, and shown once, by an administrator on the Members page or by "
        "`python manage.py create_api_client ORG USERNAME`."
        + (f" Each token may send {KIDNEYWEB_API_RATE.replace('/', ' requests per ')}; beyond that, the answer is 429 "
           "with `Retry-After` (seconds)." if KIDNEYWEB_API_RATE else "")
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Notifications, results sent to the archive and a scan's archive status share one set of delivery states.
    "ENUM_NAME_OVERRIDES": {"DeliveryStatusEnum": "diagnosis.models.operations.OutboundDelivery.Status"},
}

# --- Production hardening ---------------------------------------------------------------------------

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    # Health probes from the orchestrator, and a monitoring scraper, speak plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
        # Only behind a proxy that sets this header itself; otherwise clients could forge it.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    # Only for a plain-HTTP trial on a host other than localhost (browsers drop Secure cookies there).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Scripts and styles from this site only, no inline scripts (style attributes carry the probability bars);
# images also from data:/blob: URLs (the viewer's canvas, Swagger UI's icons). Empty turns it off.
KIDNEYWEB_CONTENT_SECURITY_POLICY = os.environ.get(
    "KIDNEYWEB_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
SESSION_COOKIE_HTTPONLY = True
# Ward workstations are shared: a login lasts a shift (not Django's two weeks) and ends with the browser.
SESSION_COOKIE_AGE = env_int("KIDNEYWEB_SESSION_HOURS", 12) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# And after this long without the user doing anything (pages polling for results do not count); 0: never.
KIDNEYWEB_IDLE_SECONDS = env_int("KIDNEYWEB_IDLE_MINUTES", 30) * 60
# Result notifications (webhooks) carry no patient names, but a plain-http address would expose their
# signature and ids on the way: https only, unless a deployment on a closed network allows http.
KIDNEYWEB_WEBHOOK_ALLOW_HTTP = env_bool("KIDNEYWEB_WEBHOOK_ALLOW_HTTP", False)
# AI results sent to the archive (PACS) carry the patient's name and the image: https only, unless a deployment
# whose archive is on a closed network allows http.
# The same allows DICOM's own protocol (dicom://AE@host:port, DIMSE), which is unencrypted too.
KIDNEYWEB_PACS_ALLOW_HTTP = env_bool("KIDNEYWEB_PACS_ALLOW_HTTP", False)
# HL7 v2 results to the record system over plain MLLP (mllp://, unencrypted): only on a closed network.
KIDNEYWEB_HL7_ALLOW_PLAIN = env_bool("KIDNEYWEB_HL7_ALLOW_PLAIN", False)
# The site's address as the hospital's systems reach it (https://kidneyweb.example.org), for links in what a worker
# sends them, which has no request to take it from (the PDF report's in an HL7 message); empty: no such links.
KIDNEYWEB_PUBLIC_URL = os.environ.get("KIDNEYWEB_PUBLIC_URL", "").strip().rstrip("/")
# kidneyweb's AE title for an archive reached by DIMSE: the archive's administrator registers it.
KIDNEYWEB_DICOM_AE_TITLE = os.environ.get("KIDNEYWEB_DICOM_AE_TITLE", "KIDNEYWEB")[:16]
# The DICOM listener (`manage.py dicom_listener`, DIMSE C-STORE) takes CT slices from the archive or a modality
# on this port, called as KIDNEYWEB_DICOM_AE_TITLE, from the AE titles of KIDNEYWEB_DICOM_PEERS only:
# "PACS=pacs-router,CT1=ct-scanner", each with the kidneyweb account its slices are filed as (an API client of
# the organization, `manage.py create_api_client`), so they land in that organization as its uploads do.
KIDNEYWEB_DICOM_LISTEN_PORT = env_int("KIDNEYWEB_DICOM_LISTEN_PORT", 11112)
KIDNEYWEB_DICOM_PEERS = env_list("KIDNEYWEB_DICOM_PEERS", [])
# The listener over TLS (PS3.15 B.1; port 2762 by convention): its certificate chain and key (PEM files). With
# KIDNEYWEB_DICOM_TLS_CLIENT_CA too, only senders presenting a certificate that CA signed connect (an AE title
# alone proves nothing).
KIDNEYWEB_DICOM_TLS_CERT = os.environ.get("KIDNEYWEB_DICOM_TLS_CERT", "")
KIDNEYWEB_DICOM_TLS_KEY = os.environ.get("KIDNEYWEB_DICOM_TLS_KEY", "")
KIDNEYWEB_DICOM_TLS_CLIENT_CA = os.environ.get("KIDNEYWEB_DICOM_TLS_CLIENT_CA", "")
# Password guessing: this many failed logins for one username within the window lock it for the rest
# of the window, the right password included (diagnosis.auth).
AUTHENTICATION_BACKENDS = ["diagnosis.auth.ThrottledModelBackend"]
# The name authenticator apps show beside the code.
OTP_TOTP_ISSUER = os.environ.get("KIDNEYWEB_TOTP_ISSUER", "kidneyweb")
KIDNEYWEB_LOGIN_MAX_FAILURES = env_int("KIDNEYWEB_LOGIN_MAX_FAILURES", 5)
KIDNEYWEB_LOGIN_LOCK_MINUTES = env_int("KIDNEYWEB_LOGIN_LOCK_MINUTES", 15)
# Single sign-on with the hospital's OpenID Connect provider (diagnosis.sso): its issuer URL (discovery at
# {issuer}/.well-known/openid-configuration) and kidneyweb's client there, registered with the redirect URI
# https://<host>/accounts/sso/callback/. Unset: password logins only.
KIDNEYWEB_OIDC_ISSUER = os.environ.get("KIDNEYWEB_OIDC_ISSUER", "")
KIDNEYWEB_OIDC_CLIENT_ID = os.environ.get("KIDNEYWEB_OIDC_CLIENT_ID", "")
KIDNEYWEB_OIDC_CLIENT_SECRET = os.environ.get("KIDNEYWEB_OIDC_CLIENT_SECRET", "")
KIDNEYWEB_OIDC_SCOPE = os.environ.get("KIDNEYWEB_OIDC_SCOPE", "openid profile email")
# The ID token's claim that holds the kidneyweb username (Entra ID: preferred_username is the UPN).
KIDNEYWEB_OIDC_USERNAME_CLAIM = os.environ.get("KIDNEYWEB_OIDC_USERNAME_CLAIM", "preferred_username")
KIDNEYWEB_OIDC_LABEL = os.environ.get("KIDNEYWEB_OIDC_LABEL", "Log in with your hospital account")
# Ward workstations are shared: the provider is asked to check who is logging in every time (prompt=login), not
# to pass on the session the previous user left open there. false: its session is taken as it is (single-user
# devices).
KIDNEYWEB_OIDC_PROMPT_LOGIN = env_bool("KIDNEYWEB_OIDC_PROMPT_LOGIN", True)
# Logging out of kidneyweb after a sign-on also ends the provider's session on that device (OpenID Connect
# RP-initiated logout, where the provider offers an end_session_endpoint), so the next person at a shared
# workstation finds nobody logged in there; register https://<host>/accounts/login/ as the post-logout redirect
# URI. false: kidneyweb's session only (other applications signed on through the provider stay open).
KIDNEYWEB_OIDC_END_SESSION = env_bool("KIDNEYWEB_OIDC_END_SESSION", True)
# Members added by the hospital's groups (services.sign_on): a person whose ID token names one of these groups
# (KIDNEYWEB_OIDC_GROUPS_CLAIM: Entra ID sends group object ids, Keycloak group names) becomes a member of the
# organization KIDNEYWEB_OIDC_ORGANIZATION (its slug) at their first sign-on, as an administrator or a clinician;
# their role then follows the groups at each sign-on, and leaving them closes the account. Unset: administrators
# add every member, as without sign-on.
KIDNEYWEB_OIDC_ORGANIZATION = os.environ.get("KIDNEYWEB_OIDC_ORGANIZATION", "")
KIDNEYWEB_OIDC_GROUPS_CLAIM = os.environ.get("KIDNEYWEB_OIDC_GROUPS_CLAIM", "groups")
KIDNEYWEB_OIDC_CLINICIAN_GROUPS = env_list("KIDNEYWEB_OIDC_CLINICIAN_GROUPS", [])
KIDNEYWEB_OIDC_ADMIN_GROUPS = env_list("KIDNEYWEB_OIDC_ADMIN_GROUPS", [])
# false: members log in through the hospital's sign-on only, so its password, multi-factor and leaver rules apply to
# every login, and kidneyweb hands out no password (diagnosis.auth). Site superusers keep theirs: the
# server operator's way in while the provider is down.
KIDNEYWEB_PASSWORD_LOGIN = env_bool("KIDNEYWEB_PASSWORD_LOGIN", True)
if not KIDNEYWEB_PASSWORD_LOGIN and not (KIDNEYWEB_OIDC_ISSUER and KIDNEYWEB_OIDC_CLIENT_ID):
    raise ImproperlyConfigured("KIDNEYWEB_PASSWORD_LOGIN=false needs the hospital's sign-on (KIDNEYWEB_OIDC_ISSUER "
                               "and KIDNEYWEB_OIDC_CLIENT_ID): without it only site superusers could log in.")
X_FRAME_OPTIONS = "DENY"

# --- Logging ----------------------------------------------------------------------------------------

LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "diagnosis": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "celery": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "training": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # Its INFO lines narrate every attribute it copies into a structured report: a dozen per result.
        "highdicom": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
    },
}
