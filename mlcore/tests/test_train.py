"""A one-epoch training run on synthetic slices: the saved model and card must be usable."""

import json

import numpy as np
import pytest

from mlcore.card import REQUIRED_KEYS, card_path_for, read_card
from mlcore.inference import Classifier


def test_training_writes_a_model_and_a_card_with_scores(trained_model):
    assert trained_model.model_path.exists()
    card = json.loads(card_path_for(trained_model.model_path).read_text())
    assert set(REQUIRED_KEYS) <= set(card)
    assert card["classes"] == ["Cyst", "Normal", "Stone", "Tumor"]
    assert card["input_size"] == 32
    test = card["metrics"]["test_series_split"]
    assert set(test) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix", "roc_auc", "by_series"}
    assert len(test["by_series"]["series"]) == test["series"]
    assert sum(row["slices"] for row in test["by_series"]["series"]) == test["support"]
    assert card["calibration"]["temperature"] > 0
    assert card["out_of_scope"]["distance_threshold"] > 0
    assert sum(card["data"]["images_per_split"].values()) == card["data"]["images"] == 80
    assert len(card["training"]["history"]) == 1
    assert trained_model.test_scores.support == card["data"]["images_per_split"]["test"]


def test_trained_model_loads_and_predicts_every_class_probability(trained_model, synthetic_dataset):
    classifier = Classifier.load(trained_model.model_path)
    paths = sorted(synthetic_dataset.glob("*/*.jpg"))[:3]
    results = classifier.predict(paths)
    assert len(results) == 3
    for result in results:
        assert set(result.probabilities) == {"Cyst", "Normal", "Stone", "Tumor"}
        assert abs(sum(result.probabilities.values()) - 1.0) < 1e-4
        assert result.label == max(result.probabilities, key=result.probabilities.get)


def test_batched_and_single_predictions_agree(trained_model, synthetic_dataset):
    classifier = Classifier.load(trained_model.model_path)
    paths = sorted(synthetic_dataset.glob("*/*.jpg"))[:4]
    batched = classifier.predict(paths)
    single = [classifier.predict([p])[0] for p in paths]
    for a, b in zip(batched, single):
        assert np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5)


def test_mixed_sizes_in_one_call_are_each_classified(trained_model):
    classifier = Classifier.load(trained_model.model_path)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64, 1), dtype=np.uint8), rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)]
    assert len(classifier.predict(images)) == 2


def test_card_round_trips(trained_model):
    card = read_card(trained_model.model_path)
    assert card == trained_model.card


def test_mixup_blends_images_and_labels_with_the_first_slice_dominant():
    import tensorflow as tf

    from mlcore.train import _mixup

    images = tf.constant(np.stack([np.full((4, 4, 1), v, np.uint8) for v in (0, 200)]))
    labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    weights = tf.constant([0.5, 3.0])
    batch = tf.data.Dataset.from_tensors((images, labels, weights))
    mixed_images, mixed_labels, mixed_weights = next(iter(_mixup(batch, 0.4, 0)))
    mixed_labels = mixed_labels.numpy()
    assert mixed_weights.numpy().tolist() == [0.5, 3.0]  # each slice keeps its own weight: it dominates its blend
    assert np.allclose(mixed_labels.sum(axis=1), 1.0)
    assert (mixed_labels.max(axis=1) >= 0.5).all()
    # an image's pixel value follows its label's weights
    first = mixed_images.numpy()[0, 0, 0, 0]
    assert first == pytest.approx(200 * mixed_labels[0, 1], abs=1e-3)


def _records(sizes: dict[tuple[str, str], int]):
    from pathlib import Path

    from mlcore.data import ImageRecord

    return [ImageRecord(path=Path(f"{label}-{series}-{i}.jpg"), label=label, image_id=i, series=series, split="train")
            for (label, series), size in sizes.items() for i in range(size)]


def test_class_weighting_gives_each_class_the_same_total_weight():
    from mlcore.train import sample_weights

    records = _records({("Cyst", "a"): 30, ("Cyst", "b"): 10, ("Stone", "c"): 8, ("Stone", "d"): 2})
    weights = sample_weights(records, ["Cyst", "Stone"], class_weighting=True, series_weighting=0.0)
    labels = np.array([r.label for r in records])
    assert weights[labels == "Cyst"].sum() == pytest.approx(weights[labels == "Stone"].sum())
    assert weights.mean() == pytest.approx(1.0)
    # without series weighting every slice of a class weighs the same
    assert np.ptp(weights[labels == "Cyst"]) == pytest.approx(0.0)


def test_full_series_weighting_makes_each_patient_count_the_same_within_a_class():
    from mlcore.train import sample_weights

    records = _records({("Stone", "long"): 40, ("Stone", "short"): 4, ("Tumor", "t"): 10})
    weights = sample_weights(records, ["Stone", "Tumor"], class_weighting=True, series_weighting=1.0)
    series = np.array([r.series for r in records])
    assert weights[series == "long"].sum() == pytest.approx(weights[series == "short"].sum())
    assert weights[series == "long"].sum() + weights[series == "short"].sum() == pytest.approx(weights[series == "t"].sum())
    assert weights.mean() == pytest.approx(1.0)


def test_half_series_weighting_shrinks_a_long_series_share_without_erasing_it():
    from mlcore.train import sample_weights

    records = _records({("Stone", "long"): 36, ("Stone", "short"): 4})
    series = np.array([r.series for r in records])
    share = {p: sample_weights(records, ["Stone"], class_weighting=False, series_weighting=p)[series == "long"].sum() / 40
             for p in (0.0, 0.5, 1.0)}
    assert share[0.0] == pytest.approx(0.9)
    assert share[0.5] == pytest.approx(6 / 8)  # sqrt(36) : sqrt(4)
    assert share[1.0] == pytest.approx(0.5)


def test_without_class_weighting_each_class_keeps_its_slice_count_as_weight():
    from mlcore.train import sample_weights

    records = _records({("Cyst", "a"): 30, ("Stone", "c"): 6, ("Stone", "d"): 4})
    weights = sample_weights(records, ["Cyst", "Normal", "Stone"], class_weighting=False, series_weighting=1.0)
    labels = np.array([r.label for r in records])
    assert weights[labels == "Cyst"].sum() == pytest.approx(30)
    assert weights[labels == "Stone"].sum() == pytest.approx(10)


def test_focal_loss_weighs_slices_read_right_far_less_than_slices_read_wrong():
    from mlcore.config import TrainConfig
    from mlcore.train import _loss

    labels = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]], dtype="float32")
    right, wrong = [0.9, 0.05, 0.03, 0.02], [0.1, 0.8, 0.05, 0.05]
    plain = _loss(TrainConfig(label_smoothing=0.0))
    focal = _loss(TrainConfig(label_smoothing=0.0, focal_gamma=2.0))

    def each(loss):
        return [float(loss(labels[:1], np.array([p], dtype="float32"))) for p in (right, wrong)]

    (plain_right, plain_wrong), (focal_right, focal_wrong) = each(plain), each(focal)
    assert focal_right < 0.02 * plain_right  # (1 - 0.9)^2 = 0.01
    assert focal_wrong > 0.75 * plain_wrong  # (1 - 0.1)^2 = 0.81


def test_balanced_sampling_draws_every_class_equally_often_in_an_epoch(synthetic_dataset):
    from mlcore.data import list_images
    from mlcore.train import dataset

    records = list_images(synthetic_dataset)
    by_class = {name: [r for r in records if r.label == name] for name in ("Cyst", "Normal", "Stone", "Tumor")}
    # Normal 8 times as common as Stone: one Stone slice for every eight Normal ones.
    skewed = by_class["Normal"][:16] + by_class["Stone"][:2] + by_class["Cyst"][:8] + by_class["Tumor"][:6]
    names = ["Cyst", "Normal", "Stone", "Tumor"]

    ds, labels = dataset(skewed, names, batch_size=8, shuffle=True, seed=3, balanced=True)
    drawn = np.concatenate([batch[1].numpy() for epoch in range(10) for batch in ds])

    assert len(drawn) == 10 * 32  # an epoch is as many slices as there are
    assert np.bincount(drawn, minlength=4).tolist() == [80, 80, 80, 80]
    plain = np.concatenate([batch[1].numpy() for batch in dataset(skewed, names, batch_size=8, shuffle=True)[0]])
    assert np.bincount(plain, minlength=4)[2] == 2  # without it, the two Stone slices come once each


def test_a_run_with_balanced_sampling_trains_and_ships_a_model_that_predicts(tmp_path, synthetic_dataset):
    from mlcore.config import Params, Paths, TrainConfig
    from mlcore.pipeline import run_all
    from mlcore.tests.conftest import TINY_TRAIN

    paths = Paths(data_dir=synthetic_dataset, artifacts_dir=tmp_path / "artifacts", model_out=tmp_path / "b.keras")
    params = Params(train=TrainConfig().with_overrides({**TINY_TRAIN, "sampling": "balanced"}))
    result = run_all(paths, params, publish_to=paths.model_out, track=False)

    assert read_card(result.model_path).training["params"]["train"]["sampling"] == "balanced"
    out = Classifier.load(result.model_path).predict(sorted(synthetic_dataset.glob("*/*.jpg"))[:2])
    assert all(abs(sum(r.probabilities.values()) - 1.0) < 1e-4 for r in out)


def test_two_member_run_with_moving_average_ships_one_averaging_model(tmp_path, synthetic_dataset):
    from mlcore.config import Params, Paths, TrainConfig
    from mlcore.pipeline import run_all
    from mlcore.tests.conftest import TINY_TRAIN

    paths = Paths(data_dir=synthetic_dataset, artifacts_dir=tmp_path / "artifacts", model_out=tmp_path / "two.keras")
    params = Params(train=TrainConfig().with_overrides({**TINY_TRAIN, "members": 2, "ema_momentum": 0.9}))
    result = run_all(paths, params, publish_to=paths.model_out, track=False)
    card = read_card(result.model_path)
    assert [h["member"] for h in card.training["history"]] == [1, 2]
    assert [h["epoch"] for h in card.training["history"]] == [1, 2]
    assert card.metrics["best_epochs"] == [1, 1]
    classifier = Classifier.load(result.model_path)
    assert classifier.model.get_layer("m1_probabilities") is not None
    out = classifier.predict(sorted(synthetic_dataset.glob("*/*.jpg"))[:2])
    assert all(abs(sum(r.probabilities.values()) - 1.0) < 1e-4 for r in out)
