"""The settings module read in fresh processes, as a server would start."""

import json
import secrets
from pathlib import Path

from mlcore import SHIPPED_MODEL

from .subprocess_env import clean_env, run_manage, run_python

PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "example.org",
}

DUMP = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'debug': s.DEBUG, 'engine': s.DATABASES['default']['ENGINE'], "
    "'db_name': str(s.DATABASES['default']['NAME']), 'broker': s.CELERY_BROKER_URL, "
    "'broker_options': {k: str(v) for k, v in s.CELERY_BROKER_TRANSPORT_OPTIONS.items()}, "
    "'storage': s.STORAGES['default']['BACKEND'], 'storage_options': {k: str(v) for k, v in "
    "s.STORAGES['default'].get('OPTIONS', {}).items()}, 'model': str(s.KIDNEYWEB_MODEL_PATH), "
    "'max_bytes': s.KIDNEYWEB_MAX_UPLOAD_BYTES, 'max_pixels': s.KIDNEYWEB_MAX_IMAGE_PIXELS, "
    "'ssl_redirect': getattr(s, 'SECURE_SSL_REDIRECT', False), 'cache': s.CACHES['default']['BACKEND']}))"
)


def dump(tmp_path, **env):
    result = run_python(DUMP, clean_env(tmp_path, **env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_secret_key_is_required_when_debug_is_off(tmp_path):
    result = run_python("import django; django.setup()", clean_env(tmp_path, DJANGO_DEBUG="0"))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY must be set" in result.stderr


def test_the_env_example_placeholder_key_is_refused_however_debug_off_is_spelt(tmp_path):
    for off in ("0", "false", "no"):
        env = clean_env(tmp_path, DJANGO_DEBUG=off, SECRET_KEY="change-me-to-a-long-random-value")
        result = run_python("import django; django.setup()", env)

        assert result.returncode != 0 and "not the .env.example placeholder" in result.stderr, off


def test_check_deploy_passes_with_production_values(tmp_path):
    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], clean_env(tmp_path, **PRODUCTION))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_catches_an_unsafe_production_setting(tmp_path):
    # The test above proves something only if the check can fail here.
    env = clean_env(tmp_path, **PRODUCTION, DJANGO_SECURE_HSTS_SECONDS="0")

    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env)

    assert result.returncode != 0 and "security.W004" in result.stderr


def test_defaults_need_no_server_sqlite_and_a_filesystem_broker(tmp_path):
    values = dump(tmp_path)

    assert values["debug"] is True
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(tmp_path / "db.sqlite3")
    assert values["broker"] == "filesystem://"
    assert values["broker_options"]["data_folder_in"] == values["broker_options"]["data_folder_out"]
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert (tmp_path / "broker" / "queue").is_dir()
    assert values["storage"] == "django.core.files.storage.FileSystemStorage"
    assert values["storage_options"]["location"] == str(tmp_path / "media")
    assert values["model"] == str(Path(__file__).resolve().parents[2] / SHIPPED_MODEL)
    assert (values["max_bytes"], values["max_pixels"]) == (20 * 1024 * 1024, 4096 * 4096)


def test_database_and_redis_urls_switch_to_postgresql_and_redis(tmp_path):
    values = dump(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/kidneyweb",
        REDIS_URL="redis://127.0.0.1:6379/3",
    )

    assert values["engine"] == "django.db.backends.postgresql"
    assert values["db_name"] == "kidneyweb"
    assert values["broker"] == "redis://127.0.0.1:6379/3"
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"  # API request counts shared


def test_a_bucket_name_switches_media_to_s3(tmp_path):
    values = dump(tmp_path, AWS_STORAGE_BUCKET_NAME="scans-bucket", AWS_S3_REGION_NAME="eu-central-1")

    assert values["storage"] == "storages.backends.s3.S3Storage"
    assert values["storage_options"]["bucket_name"] == "scans-bucket"
    assert values["storage_options"]["default_acl"] == "private"


def test_upload_limits_come_from_the_environment(tmp_path):
    values = dump(tmp_path, KIDNEYWEB_MAX_UPLOAD_BYTES="1000", KIDNEYWEB_MAX_IMAGE_PIXELS="2500")

    assert (values["max_bytes"], values["max_pixels"]) == (1000, 2500)


def test_a_malformed_boolean_is_a_clear_configuration_error(tmp_path):
    result = run_python("import django; django.setup()", clean_env(tmp_path, DJANGO_DEBUG="maybe"))

    assert result.returncode != 0 and "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


def test_a_login_lasts_a_shift_and_ends_with_the_browser(tmp_path):
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_AGE, s.SESSION_EXPIRE_AT_BROWSER_CLOSE)")
    default = run_python(code, clean_env(tmp_path))
    chosen = run_python(code, clean_env(tmp_path, KIDNEYWEB_SESSION_HOURS="8"))

    assert default.stdout.split()[-2:] == ["43200", "True"], default.stderr
    assert chosen.stdout.split()[-2:] == ["28800", "True"], chosen.stderr


def test_a_malformed_credentials_key_stops_the_server_from_starting(tmp_path):
    for name, value in (("KIDNEYWEB_CREDENTIALS_KEY", "not-a-key"),
                        ("KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS", "A" * 43 + "=,short")):
        result = run_python("import django; django.setup()", clean_env(tmp_path, **{name: value}))

        assert result.returncode != 0
        assert f"{name} holds something that is not a key" in result.stderr


def test_a_generated_credentials_key_is_taken(tmp_path):
    result = run_manage(["reseal_credentials", "--generate-key"], clean_env(tmp_path))
    key = result.stdout.strip()
    assert result.returncode == 0 and len(key) == 44

    started = run_python("import django; django.setup()", clean_env(tmp_path, KIDNEYWEB_CREDENTIALS_KEY=key,
                                                                    KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS=key))
    assert started.returncode == 0, started.stderr


def test_turning_passwords_off_without_the_hospitals_sign_on_is_refused_at_start(tmp_path):
    # Nobody but site superusers could log in.
    refused = run_python("import django; django.setup()", clean_env(tmp_path, KIDNEYWEB_PASSWORD_LOGIN="false"))
    started = run_python("import django; django.setup()", clean_env(
        tmp_path, KIDNEYWEB_PASSWORD_LOGIN="false", KIDNEYWEB_OIDC_ISSUER="https://login.hospital.example.org",
        KIDNEYWEB_OIDC_CLIENT_ID="kidneyweb"))

    assert refused.returncode != 0 and "KIDNEYWEB_PASSWORD_LOGIN=false needs the hospital's sign-on" in refused.stderr
    assert started.returncode == 0, started.stderr
