"""Contrastive pretraining: an encoder file the classifier starts from, test slices never seen."""

import json
from dataclasses import replace

import numpy as np
import pytest

from mlcore.cli import main
from mlcore.config import TrainConfig
from mlcore.data import ingest
from mlcore.model import build_model, model_for
from mlcore.pretrain import load_backbone, nt_xent, pretrain

from .conftest import TINY_TRAIN

CLASSES = ["Cyst", "Normal", "Stone", "Tumor"]


def _config(**overrides) -> TrainConfig:
    return TrainConfig().with_overrides({**TINY_TRAIN, "width": 8, "normalization": "group", **overrides})


@pytest.fixture(scope="module")
def records(synthetic_dataset, tmp_path_factory):
    found, _ = ingest(synthetic_dataset, _config().split, workdir=tmp_path_factory.mktemp("work"))
    return found


@pytest.fixture(scope="module")
def encoder(records, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "encoder.keras"
    result = pretrain(records=[r for r in records if r.split != "test"], config=_config(), out=out, epochs=2,
                      batch_size=8)
    return result


def test_the_loss_is_low_when_views_pair_up_and_high_when_they_are_shuffled():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    first = rng.normal(size=(16, 32)).astype("float32")
    paired = float(nt_xent(tf.constant(first), tf.constant(first + 0.01 * rng.normal(size=first.shape).astype("float32")), 0.2))
    shuffled = float(nt_xent(tf.constant(first), tf.constant(first[rng.permutation(16)]), 0.2))
    assert paired < 0.5
    assert shuffled > 2.0


def test_pretraining_writes_an_encoder_and_logs_a_finite_loss_per_epoch(encoder):
    assert encoder.path.exists()
    assert len(encoder.losses) == 2 and all(np.isfinite(encoder.losses))
    assert encoder.slices > 0


def test_a_classifier_given_the_encoder_starts_from_its_convolutions(encoder):
    import keras

    pretrained = keras.saving.load_model(encoder.path, compile=False)
    model = model_for(replace(_config(), weights=str(encoder.path)), class_names=CLASSES, seed=3)
    fresh = model_for(_config(), class_names=CLASSES, seed=3)
    for name in ("stem_conv", "stage4_block1_conv2"):
        loaded = model.get_layer(name).get_weights()[0]
        np.testing.assert_array_equal(loaded, pretrained.get_layer(name).get_weights()[0])
        assert not np.allclose(loaded, fresh.get_layer(name).get_weights()[0]), "the same seed alone would match"


def test_an_encoder_of_another_width_is_refused_not_half_loaded(encoder):
    model = build_model(class_names=CLASSES, image_size=32, width=16, normalization="group", augment=False)
    with pytest.raises(ValueError, match="does not fit: layer 'stem_conv'.*another width"):
        load_backbone(model, encoder.path)


def test_a_file_that_is_no_model_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "encoder.keras"
    bad.write_bytes(b"not a model")
    model = build_model(class_names=CLASSES, image_size=32, width=8, normalization="group", augment=False)
    with pytest.raises(ValueError, match="is not a pretrained encoder"):
        load_backbone(model, bad)


def test_test_records_are_refused_so_the_judged_model_has_never_seen_them(records, tmp_path):
    with pytest.raises(ValueError, match="no test records"):
        pretrain(records=records, config=_config(), out=tmp_path / "e.keras", epochs=1, batch_size=8)


def test_too_few_slices_for_a_batch_are_refused(records, tmp_path):
    kept = [r for r in records if r.split == "train"][:10]
    with pytest.raises(ValueError, match="too few for batches of 8"):
        pretrain(records=kept, config=_config(), out=tmp_path / "e.keras", epochs=1, batch_size=8)


def test_cli_pretrains_on_the_non_test_slices_and_refuses_a_wrong_suffix(synthetic_dataset, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"train": {**TINY_TRAIN, "width": 8, "normalization": "group"}}))
    out = tmp_path / "enc.keras"
    common = ["--data", str(synthetic_dataset), "--params", str(params), "--epochs", "1", "--batch-size", "8",
              "--workdir", str(tmp_path / "work"), "--no-track"]
    assert main(["pretrain", "--out", str(out), *common]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    records, _ = ingest(synthetic_dataset, _config().split, workdir=tmp_path / "work2")
    assert printed["slices"] == sum(r.split != "test" for r in records)
    assert out.exists()
    assert main(["pretrain", "--out", str(tmp_path / "enc.h5"), *common]) == 2
    assert "must end in .keras" in capsys.readouterr().err


def test_with_fine_tuning_the_pretrained_convolutions_stay_frozen_in_the_first_phase(encoder, records):
    from mlcore.train import dataset, fit_network

    config = replace(_config(), weights=str(encoder.path), epochs=1, fine_tune_epochs=1)
    model = model_for(config, class_names=CLASSES, seed=5)
    before = model.get_layer("stem_conv").get_weights()[0].copy()
    train = [r for r in records if r.split == "train"]
    val = [r for r in records if r.split == "val"]
    val_ds, val_labels = dataset(val, CLASSES, 8)
    fit_network(model, train_records=train, val_ds=val_ds, val_labels=val_labels, class_names=CLASSES,
                config=config, seed=5, member=0, history=[], epoch_offset=0, total_epochs=1, on_epoch_end=None,
                should_stop=None, epochs=1)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], before)
