"""Series-level cross-validation: folds of whole series, the test split untouched, every epoch scored."""

import json
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mlcore.cli import main
from mlcore.config import TrainConfig
from mlcore.crossval import (HeldOut, assign_folds, combine, cross_validate, load_held_out, save_held_out, score_epochs,
                             subsample_series)
from mlcore.data import ImageRecord, class_names_of, ingest

from .conftest import TINY_TRAIN


def _records(sizes_by_class: dict[str, list[int]], view: str = "axial") -> list[ImageRecord]:
    out = []
    for label, sizes in sizes_by_class.items():
        image_id = 0
        for n, size in enumerate(sizes):
            for _ in range(size):
                out.append(ImageRecord(path=Path(f"{label}-{image_id}.jpg"), label=label, image_id=image_id,
                                       series=f"{label}-s{n:04d}", view=view, split="train"))
                image_id += 1
    return out


def test_every_series_lands_in_exactly_one_fold_and_each_class_is_spread_evenly():
    records = _records({"Stone": [142, 30, 20, 12, 9, 5, 3], "Tumor": [60, 50, 40, 30, 20, 10]})
    folds = assign_folds(records, 3, seed=1)
    assert set(folds) == {r.series for r in records}
    assert set(folds.values()) == {0, 1, 2}
    for label in ("Stone", "Tumor"):
        per_fold = Counter(folds[s] for s in {r.series for r in records if r.label == label})
        assert set(per_fold) == {0, 1, 2}, "every fold holds series of every class"
    tumour_slices = defaultdict(int)
    for record in records:
        if record.label == "Tumor":
            tumour_slices[folds[record.series]] += 1
    # Largest first to the emptiest fold: 60|50|40 then 30→40's fold, 20→50's, 10→60's: 70 each.
    assert sorted(tumour_slices.values()) == [70, 70, 70]


def test_folds_are_the_same_for_the_same_seed_and_need_series():
    records = _records({"Cyst": [4, 4, 4, 4, 4, 4], "Normal": [3, 2, 1]})
    assert assign_folds(records, 2, seed=7) == assign_folds(records, 2, seed=7)
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_folds(records, 1)
    with pytest.raises(ValueError, match="assign_series"):
        assign_folds([replace(records[0], series="")], 2)


def test_test_records_are_refused_so_a_recipe_is_never_chosen_on_them():
    records = _records({"Cyst": [3, 3], "Normal": [3, 3]})
    records[0] = replace(records[0], split="test")
    with pytest.raises(ValueError, match="no test records"):
        cross_validate(records=records, class_names=("Cyst", "Normal"), config=TrainConfig(), folds=2)


def test_a_fold_without_a_class_to_train_on_is_refused_with_advice():
    records = _records({"Cyst": [3, 3], "Normal": [3]})
    with pytest.raises(ValueError, match="use fewer folds"):
        cross_validate(records=records, class_names=("Cyst", "Normal"), config=TrainConfig().with_overrides(
            {"image_size": 32, "epochs": 1}), folds=2)


def test_a_learning_curve_keeps_a_seeded_share_of_each_class_s_series_and_at_least_one():
    records = _records({"Cyst": [2] * 10, "Stone": [5, 4, 3], "Tumor": [7]})

    half = subsample_series(records, 0.5, seed=3)

    kept = {label: {r.series for r in half if r.label == label} for label in ("Cyst", "Stone", "Tumor")}
    assert [len(kept[c]) for c in ("Cyst", "Stone", "Tumor")] == [5, 2, 1]
    assert all(len([r for r in half if r.series == s]) == len([r for r in records if r.series == s])
               for s in kept["Stone"]), "a kept series keeps all its slices"
    assert subsample_series(records, 0.5, seed=3) == half
    assert {r.series for r in subsample_series(records, 0.5, seed=4)} != {r.series for r in half}
    assert len(subsample_series(records, 1.0, seed=3)) == len(records)
    for fraction in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="train_fraction must be in"):
            subsample_series(records, fraction, seed=3)


@pytest.fixture(scope="module")
def developer_records(synthetic_dataset):
    config = TrainConfig().with_overrides(TINY_TRAIN)
    records, _ = ingest(synthetic_dataset, config.split)
    return [r for r in records if r.split != "test"], class_names_of(records)


def test_cross_validation_scores_every_held_out_slice_at_every_epoch(developer_records):
    records, class_names = developer_records
    config = TrainConfig().with_overrides({**TINY_TRAIN, "epochs": 3, "early_stopping_patience": 1})
    seen = []
    result = cross_validate(records=records, class_names=class_names, config=config, folds=2,
                            on_epoch_end=lambda fold, epoch, f1: seen.append((fold, epoch)))
    # Patience 1 would stop a fold at its first epoch without gain, choosing on its held-out series.
    assert result.config["early_stopping_patience"] > config.epochs
    assert seen == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert [e.epoch for e in result.epochs] == [1, 2, 3]
    assert result.slices == len(records) and result.series == len({r.series for r in records})
    assert sum(sum(f.values()) for f in result.series_per_fold) == result.series
    for epoch in result.epochs:
        assert len(epoch.fold_macro_f1) == 2
        assert 0.0 <= epoch.accuracy <= 1.0 and set(epoch.recall) == set(class_names)
        assert sum(epoch.series_right.values()) <= result.series
    assert result.config["members"] == 1


def test_a_learning_curve_point_trains_on_fewer_series_but_scores_every_held_out_slice(developer_records, caplog):
    records, class_names = developer_records
    config = TrainConfig().with_overrides({**TINY_TRAIN, "epochs": 1})

    with caplog.at_level("INFO", logger="mlcore.crossval"):
        result = cross_validate(records=records, class_names=class_names, config=config, folds=2, train_fraction=0.5)

    assert result.train_fraction == 0.5 and result.to_dict()["train_fraction"] == 0.5
    assert len(result.held_out.labels) == len(records), "the held-out folds stay whole"
    trained = [int(m.group(1)) for m in (re.search(r"in (\d+) series to train on", line) for line in caplog.messages) if m]
    assert len(trained) == 2 and sum(trained) < result.series, "each fold trains on about half its series"
    with pytest.raises(ValueError, match="train_fraction must be in"):
        cross_validate(records=records, class_names=class_names, config=config, folds=2, train_fraction=0.0)


def test_cli_cross_validate_writes_each_epoch_prints_the_last_and_logs_the_run(synthetic_dataset, tmp_path, capsys,
                                                                               monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  image_size: 32\n  batch_size: 16\n  split:\n    val_fraction: 0.25\n"
                      "    test_fraction: 0.25\n")
    out, held_out = tmp_path / "cv.json", tmp_path / "cv.npz"
    assert main(["cross-validate", "--data", str(synthetic_dataset), "--folds", "2", "--epochs", "1",
                 "--params", str(params), "--config", str(tmp_path / "none.yaml"), "--out", str(out),
                 "--workdir", str(tmp_path / "work"), "--held-out", str(held_out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = json.loads(out.read_text())
    assert printed["folds"] == 2 and printed["epoch"] == 1
    assert printed["macro_f1"] == round(written["epochs"][-1]["macro_f1"], 4)
    # 4 series per class, one of them test: 3 per class are cross-validated.
    assert printed["series_per_class"] == {"Cyst": 3, "Normal": 3, "Stone": 3, "Tumor": 3}

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    [run] = mlflow.search_runs(experiment_names=["kidneyweb"], filter_string="tags.kind = 'cross-validation'",
                               output_format="list")
    assert run.data.params["folds"] == "2" and run.data.params["early_stopping_patience"] == "2"
    assert run.data.metrics["cv_macro_f1"] == pytest.approx(written["epochs"][-1]["macro_f1"])
    assert {"fold1_macro_f1", "fold2_macro_f1", "cv_recall_Stone"} <= set(run.data.metrics)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert artifacts == {"cv.json", "cv.npz"}

    # The run's held-out probabilities, combined with themselves, score as the run did.
    assert main(["combine-cross-validations", str(held_out), str(held_out), "--out", str(tmp_path / "both.json")]) == 0
    combined = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert combined["runs"] == 2 and combined["series"] == printed["series"]
    for key in ("accuracy", "macro_f1", "recall", "series_right", "fold_macro_f1", "series_per_class"):
        assert combined[key] == printed[key], key


def _held_out(probabilities: list[list[float]], order: list[int] | None = None) -> HeldOut:
    """Four slices of two series (two per class), in the given order."""
    order = order or list(range(4))
    paths, labels, series = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], [0, 0, 1, 1], ["s1", "s1", "s2", "s2"]
    return HeldOut(class_names=("Cyst", "Normal"), paths=tuple(paths[i] for i in order),
                   labels=np.array([labels[i] for i in order]), series=tuple(series[i] for i in order),
                   folds=np.array([labels[i] for i in order]),
                   probabilities={3: np.array([probabilities[i] for i in order], dtype=float)})


def test_combined_runs_average_each_slice_over_runs_whatever_their_order():
    # Run one reads slices a and c right, run two b and d, each with little confidence to spare.
    one = _held_out([[0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.8, 0.2]])
    two = _held_out([[0.3, 0.7], [0.9, 0.1], [0.9, 0.1], [0.25, 0.75]], order=[3, 1, 0, 2])
    assert score_epochs(one)[0].accuracy == 0.5 and score_epochs(two)[0].accuracy == 0.5
    both = combine([one, two])
    assert both.paths == ("a.jpg", "b.jpg", "c.jpg", "d.jpg")
    np.testing.assert_allclose(both.probabilities[3], [[0.45, 0.55], [0.6, 0.4], [0.675, 0.325], [0.525, 0.475]])
    [epoch] = score_epochs(both)
    # Averaged, only b leans right: an ensemble can be worse than its members.
    assert epoch.epoch == 3 and epoch.accuracy == 0.25
    assert epoch.recall == {"Cyst": 0.5, "Normal": 0.0}
    assert len(epoch.fold_macro_f1) == 2


def test_runs_over_other_slices_or_without_a_shared_epoch_are_not_combined():
    one = _held_out([[0.6, 0.4]] * 4)
    other = replace(one, paths=("a.jpg", "b.jpg", "c.jpg", "e.jpg"))
    with pytest.raises(ValueError, match="same held-out slices"):
        combine([one, other])
    with pytest.raises(ValueError, match="share no epoch"):
        combine([one, replace(one, probabilities={4: one.probabilities[3]})])
    with pytest.raises(ValueError, match="at least one run"):
        combine([])


def test_held_out_probabilities_survive_a_round_trip_through_a_file(tmp_path):
    run = _held_out([[0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.8, 0.2]], order=[2, 0, 3, 1])
    save_held_out(run, tmp_path / "runs" / "one.npz")
    again = load_held_out(tmp_path / "runs" / "one.npz")
    assert (again.class_names, again.paths, again.series) == (run.class_names, run.paths, run.series)
    np.testing.assert_array_equal(again.labels, run.labels)
    np.testing.assert_array_equal(again.folds, run.folds)
    assert set(again.probabilities) == {3}
    np.testing.assert_array_equal(again.probabilities[3], run.probabilities[3])
