"""Fixtures for the Django side: organizations and members, a tiny real Keras model, the broker queue,
and the real CT slices when they are present."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from diagnosis import ml, services
from diagnosis.models import Membership

from . import brokerq
from .factories import (
    CLASS_NAMES,
    DonePredictionFactory,
    MembershipFactory,
    ModelVersionFactory,
    OrganizationFactory,
    PatientFactory,
    ScanFactory,
    token_client,
)

REPO_ROOT = Path(settings.BASE_DIR)


@pytest.fixture
def organization(db):
    return OrganizationFactory(name="St. Elsewhere")


@pytest.fixture
def other_organization(db):
    return OrganizationFactory(name="Mercy General")


@pytest.fixture
def clinician(organization):
    return MembershipFactory(organization=organization, user__username="alice").user


@pytest.fixture
def nurse(organization):
    """Another clinician of the organization: the member whose account a test changes."""
    return MembershipFactory(organization=organization, user__username="nurse").user


@pytest.fixture
def boss(organization):
    """An administrator of the organization."""
    return MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user


@pytest.fixture
def other_clinician(other_organization):
    return MembershipFactory(organization=other_organization, user__username="bob").user


@pytest.fixture
def api_client(clinician):
    return token_client(clinician)


@pytest.fixture
def ui_client(client, clinician):
    client.force_login(clinician)
    return client


@pytest.fixture
def active_model_version(db):
    """An active version for tests that queue but never infer (its file is never opened)."""
    return ModelVersionFactory(is_active=True)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small, real, untrained Keras model with its card: inference runs for real, results are noise."""
    from mlcore.card import ModelCard, write_card
    from mlcore.model import build_model

    path = tmp_path_factory.mktemp("tiny-model") / "tiny-resnet.keras"
    build_model(class_names=CLASS_NAMES, image_size=32, augment=False).save(path)
    write_card(
        path,
        ModelCard(
            name="tiny-resnet",
            architecture="resnet_small",
            classes=tuple(CLASS_NAMES),
            input_size=32,
            created="2025-01-01T00:00:00Z",
            metrics={"macro_f1": 0.0},
        ),
    )
    return path


@pytest.fixture
def copy_model(tiny_model_path, tmp_path):
    """Copy the tiny model (and card) to a path a test may alter."""

    def make(name: str = "copy.keras") -> Path:
        target = tmp_path / name
        shutil.copyfile(tiny_model_path, target)
        shutil.copyfile(tiny_model_path.with_suffix(".json"), target.with_suffix(".json"))
        return target

    return make


@pytest.fixture
def tiny_model_version(db, tiny_model_path):
    version = services.model_version_register(path=tiny_model_path, activate=True)
    yield version
    ml.clear_cache()


@pytest.fixture(scope="session", autouse=True)
def _forget_this_runs_redis_keys():
    """On Redis, the run's keys share a prefix (settings_test); remove them when the run ends."""
    yield
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix")
    if settings.REDIS_URL and prefix:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


@pytest.fixture
def broker_down():
    """Point the real Celery app at a port where nothing listens; the working pools come back after."""
    from kidneyweb.celery import app

    saved = app.conf.broker_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app._pool = app.amqp._producer_pool = None  # rebuilt lazily for the new URL
    yield
    app.conf.broker_url, app._pool, app.amqp._producer_pool = saved


@pytest.fixture
def notified(organization):
    """The organization with an address for notifications (deliveries are queued, not sent, unless a test sends
    them)."""
    organization.webhook_url = "https://ris.example.org/hook"
    organization.webhook_secret = "s" * 64
    organization.save()
    return organization


@pytest.fixture
def inference_queue():
    """The real broker's inference queue, emptied before and after the test."""
    brokerq.drain()
    yield brokerq
    brokerq.drain()


def kidney_data_dir() -> Path:
    return Path(os.environ.get("KIDNEY_DATA_DIR") or REPO_ROOT.parent / "shared" / "data" / "ct-kidney")


@pytest.fixture
def ct_slice() -> Path:
    """One real CT slice (a Stone), or a skip that says where the data set was looked for."""
    data_dir = kidney_data_dir()
    candidates = sorted((data_dir / "Stone").glob("*.jpg"))[:1] if data_dir.is_dir() else []
    if not candidates:
        pytest.skip(f"real CT slices not found in KIDNEY_DATA_DIR={data_dir}; set KIDNEY_DATA_DIR to run this test")
    return candidates[0]


@pytest.fixture(scope="session")
def unexplainable_model_path(tmp_path_factory) -> Path:
    """A real classifier with no convolutional feature map: it diagnoses, but Grad-CAM cannot explain it."""
    import keras

    from mlcore.card import ModelCard, write_card

    path = tmp_path_factory.mktemp("unexplainable-model") / "pooled-dense.keras"
    # Grad-CAM skips the input layer, and no convolution follows it.
    inputs = keras.Input((None, None, 1), name="scale_input")  # grey slices only
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(path)
    write_card(
        path,
        ModelCard(
            name="pooled-dense", architecture="dense", classes=tuple(CLASS_NAMES), input_size=32,
            created="2025-01-01T00:00:00Z", metrics={},
        ),
    )
    return path


@pytest.fixture
def receiver():
    """A hospital system's endpoint for result notifications: a real HTTP server on localhost."""
    from . import receiver as http_receiver

    listening, server = http_receiver.start()
    yield listening
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """The hospital's archive (PACS): a real Orthanc with DICOMweb, shared by the tests of one run."""
    from . import orthanc as pacs

    reason = pacs.missing()
    if reason:
        pytest.skip(f"{reason}; .ci/run installs it")
    server = pacs.start(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()


@pytest.fixture
def withdrawn_scan(organization, clinician):
    """A scan alice uploaded, diagnosed, then withdrew as uploaded for the wrong patient."""
    from diagnosis import services

    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)
    DonePredictionFactory(scan=scan)
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")
    return scan



@pytest.fixture(autouse=True)
def _fresh_api_request_counts():
    """Each test starts with no API requests counted (KIDNEYWEB_API_RATE): user ids repeat across tests."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def identity_provider(settings):
    """A real OpenID Connect provider on localhost (tests/oidc_provider.py), set up as the hospital's sign-on."""
    from diagnosis import sso

    from . import oidc_provider

    state, server = oidc_provider.start(client_id="kidneyweb", client_secret="s3cret-of-the-client")
    settings.KIDNEYWEB_OIDC_ISSUER, settings.KIDNEYWEB_OIDC_CLIENT_ID = state.url, state.client_id
    settings.KIDNEYWEB_OIDC_CLIENT_SECRET = state.client_secret
    sso.forget()
    yield state
    server.shutdown()
    sso.forget()
