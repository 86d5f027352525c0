"""Small synthetic CT-like data sets, made fresh for each test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcore.synthetic import CLASSES, synthetic_slice, write_dataset  # noqa: F401


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ct") / "data")


TINY_TRAIN = {"image_size": 32, "epochs": 1, "batch_size": 16,
              "split": {"val_fraction": 0.25, "test_fraction": 0.25}}


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, synthetic_dataset):
    """The whole pipeline, one epoch on the synthetic set; shared by tests that need a real saved model."""
    from mlcore.config import Params, Paths, TrainConfig
    from mlcore.pipeline import run_all

    root = tmp_path_factory.mktemp("pipeline")
    paths = Paths(data_dir=synthetic_dataset, artifacts_dir=root / "artifacts", model_out=root / "tiny.keras")
    params = Params(train=TrainConfig().with_overrides(TINY_TRAIN))
    return run_all(paths, params, publish_to=paths.model_out, track=False)
