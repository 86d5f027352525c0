"""Each stage on its own, as dvc repro runs them, on a small synthetic set."""

import json
from dataclasses import replace

import pytest

from mlcore.card import read_card, write_card
from mlcore.config import Params, Paths, TrainConfig
from mlcore.data import read_manifest
from mlcore import pipeline

from .conftest import TINY_TRAIN


@pytest.fixture(scope="module")
def staged(tmp_path_factory, synthetic_dataset):
    root = tmp_path_factory.mktemp("stages")
    paths = Paths(data_dir=synthetic_dataset, artifacts_dir=root / "artifacts", model_out=root / "shipped.keras")
    params = Params(train=TrainConfig().with_overrides(TINY_TRAIN))
    return paths, params


def rewrite_train_params(model_path, train):
    """Make a model's card record other training parameters, as a card of another version would."""
    card = read_card(model_path)
    write_card(model_path, replace(card, training={**card.training, "params": {**card.training["params"], "train": train}}))


def test_ingest_writes_a_manifest_split_by_series(staged):
    paths, params = staged
    report = pipeline.stage_ingest(paths, params)
    records = read_manifest(paths.manifest)
    assert len(records) == report.images == 80
    assert set(report.images_per_split) == {"train", "val", "test"}
    sides = {}
    for r in records:
        sides.setdefault(r.series, set()).add(r.split)
    assert all(len(s) == 1 for s in sides.values())
    assert json.loads(paths.ingest_report.read_text())["images"] == 80


def test_prepare_base_model_saves_the_configured_architecture(staged):
    import keras

    paths, params = staged
    pipeline.stage_prepare_base_model(paths, params)
    model = keras.saving.load_model(paths.base_model, compile=False)
    assert model.output_shape == (None, 4)
    assert any(layer.name.startswith("aug_") for layer in model.layers)  # augmentation lives in the model


def test_train_then_evaluate_write_model_scores_plots_and_card(staged):
    paths, params = staged
    result = pipeline.stage_train(paths, params)
    assert paths.trained_model.exists() and len(result.history) == 1
    scores, card = pipeline.stage_evaluate(paths, params)
    metrics = json.loads(paths.scores.read_text())
    assert metrics["accuracy"] == pytest.approx(scores.accuracy)
    assert {"macro_f1", "expected_calibration_error", "recall_Stone", "roc_auc_Tumor"} <= set(metrics)
    assert (paths.plots_dir / "confusion_matrix.png").stat().st_size > 1000
    assert (paths.plots_dir / "training_curves.png").stat().st_size > 1000
    assert read_card(paths.trained_model) == card
    # The synthetic slices are discs, so every test slice is axial.
    assert card.metrics["test_series_split"]["by_view"]["axial"]["slices"] == scores.support
    assert json.loads(paths.scores.with_name("report.json").read_text())["by_view"]["axial"]["slices"] == scores.support
    confidence = card.metrics["test_series_split"]["by_confidence"]
    assert confidence["threshold"] == params.evaluate.confidence_threshold
    assert confidence["confident"]["slices"] + confidence["uncertain"]["slices"] == scores.support
    assert (confidence["confident"]["right"] + confidence["uncertain"]["right"]) / scores.support == pytest.approx(
        scores.accuracy)
    # Marked as the inference path marks: uncertain, or flagged out of scope whatever the probability.
    from mlcore.data import read_manifest
    from mlcore.inference import Classifier

    test_paths = [r.path for r in read_manifest(paths.manifest) if r.split == "test"]
    served = Classifier.load(paths.trained_model).predict(test_paths)
    assert confidence["out_of_scope"]["slices"] == sum(result.out_of_scope for result in served)
    assert confidence["confident"]["slices"] == sum(
        not result.out_of_scope and result.confidence >= params.evaluate.confidence_threshold for result in served)
    shipped = pipeline.publish(paths)
    assert read_card(shipped).classes == ("Cyst", "Normal", "Stone", "Tumor")


def test_publish_without_a_card_refuses_and_leaves_the_shipped_pair_as_it_was(staged, tmp_path):
    import shutil

    paths, _ = staged
    shipped = tmp_path / "shipped.keras"
    pipeline.publish(paths, shipped)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    cardless = replace(paths, artifacts_dir=tmp_path / "other-artifacts")
    cardless.trained_model.parent.mkdir(parents=True)
    shutil.copyfile(paths.trained_model, cardless.trained_model)
    cardless.trained_model.write_bytes(cardless.trained_model.read_bytes() + b"another model")

    with pytest.raises(FileNotFoundError, match="nothing published: .*model.json missing"):
        pipeline.publish(cardless, shipped)

    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


def test_a_model_is_scored_on_the_test_slices_of_the_split_its_card_records(staged, tmp_path):
    from mlcore.card import own_test_records
    from mlcore.config import SplitConfig
    from mlcore.data import ingest

    paths, params = staged
    expected = {r.path for r in read_manifest(paths.manifest) if r.split == "test"}
    assert {r.path for r in own_test_records(model_path=paths.trained_model, data_dir=paths.data_dir)} == expected

    # A model split another way (here: another seed) is scored on its own test slices, not today's.
    other = tmp_path / "other.keras"
    pipeline.publish(paths, other)
    card = read_card(other)
    split = {**card.training["params"]["train"]["split"], "seed": 7}
    rewrite_train_params(other, {**card.training["params"]["train"], "split": split})
    theirs, _ = ingest(paths.data_dir, SplitConfig(**split))
    assert {r.path for r in own_test_records(model_path=other, data_dir=paths.data_dir)} == {
        r.path for r in theirs if r.split == "test"} != expected

    # A card that records no split is read as today's default split.
    write_card(other, replace(card, training={}))
    default, _ = ingest(paths.data_dir, SplitConfig())
    assert {r.path for r in own_test_records(model_path=other, data_dir=paths.data_dir)} == {
        r.path for r in default if r.split == "test"}


def test_ingest_refuses_a_data_set_too_small_to_split(tmp_path, staged):
    from PIL import Image
    import numpy as np

    folder = tmp_path / "data" / "Cyst"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((16, 16), 50, np.uint8)).save(folder / "Cyst-1.png")
    paths, params = staged
    with pytest.raises(ValueError, match="split is empty"):
        pipeline.stage_ingest(replace(paths, data_dir=tmp_path / "data", artifacts_dir=tmp_path / "a"), params)


def test_a_run_is_logged_to_mlflow(tmp_path, staged, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    paths, params = staged
    paths = replace(paths, artifacts_dir=tmp_path / "artifacts")
    from mlcore.tracking import tracked_run

    with tracked_run("test") as tracker:
        tracker.log_params({"train": {"epochs": 1}})
        tracker.log_metrics({"val_macro_f1": 0.5}, step=1)
        run_id = tracker.run_id
    run = mlflow.get_run(run_id)
    assert run.data.params["train.epochs"] == "1"
    assert run.data.metrics["val_macro_f1"] == 0.5


def test_random_split_comparison_is_recorded_in_the_card_beside_the_series_scores(staged, tmp_path):
    paths, params = staged
    shipped = tmp_path / "shipped.keras"
    pipeline.publish(paths, shipped)
    scores = pipeline.random_split_comparison(replace(paths, artifacts_dir=tmp_path / "a"), params, card_paths=(shipped,))
    card = read_card(shipped)
    assert card.metrics["test_random_split"]["accuracy"] == pytest.approx(scores.accuracy)
    assert "test_series_split" in card.metrics and "leaky" in card.metrics["test_random_split"]["note"]


def beside_the_same_manifest(paths: Paths, artifacts_dir) -> Paths:
    """Other artifacts, from the same ingest: what recalibrating needs, without overwriting the staged model."""
    out = replace(paths, artifacts_dir=artifacts_dir)
    out.manifest.parent.mkdir(parents=True)
    for path in (paths.manifest, paths.ingest_report):
        out.manifest.parent.joinpath(path.name).write_bytes(path.read_bytes())
    return out


def test_recalibrate_fits_class_offsets_to_a_shipped_models_networks_without_training(staged, tmp_path):
    import keras
    import numpy as np

    import mlcore.model  # noqa: F401
    from mlcore.train import plain_model

    paths, params = staged
    source = tmp_path / "before.keras"
    pipeline.publish(paths, source)
    with_offsets = Params(train=params.train.with_overrides({"class_offsets": True}), evaluate=params.evaluate)
    out_paths = beside_the_same_manifest(paths, tmp_path / "recalibrated")

    pipeline.recalibrate(out_paths, with_offsets, source=source)
    scores, card = pipeline.stage_evaluate(out_paths, with_offsets)

    before = keras.saving.load_model(source, compile=False)
    after = keras.saving.load_model(out_paths.trained_model, compile=False)
    images = np.random.default_rng(0).integers(0, 255, (3, 40, 40, 1), dtype=np.uint8)
    # The same networks: only the calibration differs.
    assert np.allclose(plain_model(before).predict_on_batch(images), plain_model(after).predict_on_batch(images))
    assert after.get_layer("calibrated").offsets is not None
    assert set(card.calibration["class_offsets"]) == set(card.classes)
    assert card.training["recalibrated_from"]["model"] == "before.keras"
    assert card.training["history"] == read_card(source).training["history"]


def test_recalibrate_refuses_a_model_trained_with_other_parameters(staged, tmp_path):
    paths, params = staged
    source = tmp_path / "before.keras"
    pipeline.publish(paths, source)
    other = Params(train=params.train.with_overrides({"learning_rate": 0.5}), evaluate=params.evaluate)
    with pytest.raises(ValueError, match="learning_rate"):
        pipeline.recalibrate(replace(paths, artifacts_dir=tmp_path / "x"), other, source=source)


def test_recalibrate_accepts_a_card_written_before_an_option_existed(staged, tmp_path):
    paths, params = staged
    source = tmp_path / "older.keras"
    pipeline.publish(paths, source)
    card = read_card(source)
    train = dict(card.training["params"]["train"])
    train["split"] = {k: v for k, v in train["split"].items() if k != "min_val_series"}
    del train["series_weighting"]
    rewrite_train_params(source, train)
    pipeline.recalibrate(beside_the_same_manifest(paths, tmp_path / "recalibrated"), params, source=source)


def test_recalibrate_carries_the_random_split_comparison_over_and_says_whose_it_is(staged, tmp_path):
    paths, params = staged
    source = tmp_path / "compared.keras"
    pipeline.publish(paths, source)
    card = read_card(source)
    write_card(source, replace(card, metrics={**card.metrics, "test_random_split": {"accuracy": 0.5, "note": "leaky"}}))
    out_paths = beside_the_same_manifest(paths, tmp_path / "recalibrated")
    pipeline.recalibrate(out_paths, params, source=source)
    _, recalibrated = pipeline.stage_evaluate(out_paths, params)
    assert recalibrated.metrics["test_random_split"] == {"accuracy": 0.5, "note": "leaky",
                                                         "measured_for": "compared.keras"}
