"""Refit: the shipped network is trained again on training and validation slices for the epochs validation chose."""

import math

import numpy as np
import pytest

from mlcore.card import read_card
from mlcore.config import Params, Paths, TrainConfig
from mlcore.inference import Classifier

from .conftest import TINY_TRAIN

REFIT = {**TINY_TRAIN, "epochs": 2, "ema_momentum": 0.9, "early_stopping_patience": 5, "refit": True}


@pytest.fixture(scope="module")
def refitted(tmp_path_factory, synthetic_dataset):
    import mlcore.train as train
    from mlcore.pipeline import run_all

    root = tmp_path_factory.mktemp("refit")
    paths = Paths(data_dir=synthetic_dataset, artifacts_dir=root / "artifacts", model_out=root / "refit.keras")
    trained_on: list[tuple[list[str], int]] = []
    original = train.sample_weights

    def recording(records, *args, **kwargs):
        trained_on.append((sorted({r.split for r in records}), len(records)))
        return original(records, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "sample_weights", recording)
        result = run_all(paths, Params(train=TrainConfig().with_overrides(REFIT)), publish_to=paths.model_out,
                         track=False)
    return paths, result, trained_on


def test_the_refit_trains_on_training_and_validation_slices_after_training_alone(refitted):
    paths, result, trained_on = refitted
    from mlcore.data import read_manifest

    records = read_manifest(paths.manifest)
    train = sum(r.split == "train" for r in records)
    val = sum(r.split == "val" for r in records)
    assert trained_on == [(["train"], train), (["train", "val"], train + val)]


def test_the_refit_runs_as_many_epochs_as_validation_chose_and_has_no_validation_scores(refitted):
    _, result, _ = refitted
    card = read_card(result.model_path)
    history = card.training["history"]
    chosen = [h for h in history if h["phase"] == "train"]
    refit = [h for h in history if h["phase"] == "refit_train"]
    assert len(chosen) == 2 and all(h["val_macro_f1"] is not None for h in chosen)
    assert len(refit) == card.metrics["best_epoch"] >= 1
    assert all(h["val_loss"] is None and h["val_macro_f1"] is None for h in refit)
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    assert refit[-1]["epochs"] == len(history)
    assert card.training["params"]["train"]["refit"] is True
    assert "refitted on training and validation" in card.calibration["method"]
    assert "refit" in card.out_of_scope


def test_a_refitted_model_loads_predicts_and_keeps_a_finite_out_of_scope_threshold(refitted, synthetic_dataset):
    paths, result, _ = refitted
    card = read_card(result.model_path)
    threshold = card.out_of_scope["distance_threshold"]
    assert 0 < threshold and math.isfinite(threshold)
    assert card.calibration["temperature"] > 0
    assert (paths.plots_dir / "training_curves.png").stat().st_size > 1000
    out = Classifier.load(result.model_path).predict(sorted(synthetic_dataset.glob("*/*.jpg"))[:3])
    assert all(abs(sum(r.probabilities.values()) - 1.0) < 1e-4 for r in out)


def test_calibrate_like_takes_the_temperature_and_scales_the_threshold_by_the_held_out_ratio(refitted):
    from mlcore.calibration import Calibration, calibrate_like
    from mlcore.data import read_manifest
    from mlcore.train import plain_model

    import keras

    paths, result, _ = refitted
    plain = plain_model(keras.saving.load_model(result.model_path, compile=False))
    records = [r for r in read_manifest(paths.manifest) if r.split in ("train", "val")]
    names = ("Cyst", "Normal", "Stone", "Tumor")
    once, one = calibrate_like(plain, records, names, like=Calibration(1.7, (), 0.0, held_out_distance_ratio=1.0))
    _, three = calibrate_like(plain, records, names, like=Calibration(1.7, (), 0.0, held_out_distance_ratio=3.0))
    assert one.temperature == 1.7 and once.get_layer("calibrated").temperature == pytest.approx(1.7)
    assert three.out_of_scope_threshold == pytest.approx(3.0 * one.out_of_scope_threshold, rel=1e-5)
    # At ratio 1 the threshold is the 0.995 quantile of the slices' own distances: of these 60, only the
    # farthest lies beyond it.
    from mlcore.train import dataset

    _, distance = (np.asarray(a) for a in once.predict(dataset(records, names, 16)[0], verbose=0))
    assert len(distance) == 60
    # Computed from the features in hand, it matches what the shipped model serves.
    assert one.out_of_scope_threshold == pytest.approx(float(np.quantile(distance[:, 0], 0.995)), rel=1e-4)
    assert int((distance[:, 0] > one.out_of_scope_threshold + 1e-5).sum()) == 1


def test_recalibrate_refuses_a_refitted_model(refitted, tmp_path):
    from mlcore import pipeline

    paths, result, _ = refitted
    params = Params(train=TrainConfig().with_overrides(REFIT))
    with pytest.raises(ValueError, match="refitted on its validation slices"):
        pipeline.recalibrate(paths, params, source=result.model_path)
