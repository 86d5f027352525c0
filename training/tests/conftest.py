"""Fixtures of the training app: administrators, a tiny synthetic data set with tiny parameters, and
the folders a run writes to, all inside the test run's temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings

from diagnosis.tests.conftest import (  # noqa: F401  fixtures shared with the diagnosis tests
    api_client,
    broker_down,
    clinician,
    copy_model,
    organization,
    other_organization,
    tiny_model_path,
    tiny_model_version,
)

from diagnosis.tests import brokerq
from diagnosis.tests.factories import token_client

from .factories import AdminMembershipFactory

# A whole run on the synthetic set takes seconds: small images, one epoch, big validation and test splits.
TINY_TRAIN = {"image_size": 32, "epochs": 1, "batch_size": 16, "members": 1,
              "split": {"val_fraction": 0.25, "test_fraction": 0.25}}


@pytest.fixture
def training_queue():
    """The real broker's training queue, emptied before and after the test; calling it drains it
    and returns what was sent, e.g. ``[{"task": "training.tasks.train_model", "args": [run.pk], ...}]``."""
    brokerq.drain("training")
    yield lambda: brokerq.drain("training")
    brokerq.drain("training")


@pytest.fixture
def admin_user(organization):
    return AdminMembershipFactory(organization=organization, user__username="ada-admin").user


@pytest.fixture
def admin_api(admin_user):
    return token_client(admin_user)


@pytest.fixture
def admin_ui(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    from mlcore.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("ct") / "data")


@pytest.fixture(scope="session")
def tiny_params_file(tmp_path_factory) -> Path:
    """params.yaml with the tiny training values (the evaluate section as shipped)."""
    from mlcore.config import load_params

    shipped = load_params(Path(django_settings.BASE_DIR) / "params.yaml")
    tiny = shipped.train.with_overrides(TINY_TRAIN)
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump({"train": tiny.to_dict(), "evaluate": shipped.to_dict()["evaluate"]}))
    return path


@pytest.fixture
def training_settings(settings, tmp_path, synthetic_data, tiny_params_file):
    """Runs in this process train on the synthetic set with tiny parameters, into this test's folder."""
    settings.KIDNEYWEB_TRAINING_PARAMS = tiny_params_file
    settings.KIDNEYWEB_TRAINING_DATA_DIR = str(synthetic_data)
    settings.KIDNEYWEB_MODELS_DIR = tmp_path / "models"
    settings.KIDNEYWEB_TRAINING_DIR = tmp_path / "training"
    settings.KIDNEYWEB_TRAINING_TRACK = False
    # The heartbeat thread has a connection of its own, which cannot see a test's uncommitted rows.
    settings.KIDNEYWEB_TRAINING_HEARTBEAT_SECONDS = 0
    return settings


@pytest.fixture(autouse=True)
def _fresh_api_request_counts():
    """Each test starts with no API requests counted (KIDNEYWEB_API_RATE): user ids repeat across tests."""
    from django.core.cache import cache

    cache.clear()
