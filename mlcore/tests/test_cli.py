import json

import pytest

from mlcore.cli import main


def test_predict_prints_one_json_object_per_image(trained_model, synthetic_dataset, capsys):
    paths = [str(p) for p in sorted(synthetic_dataset.glob("*/*.jpg"))[:2]]
    assert main(["predict", "--model", str(trained_model.model_path), *paths]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for path, line in zip(paths, lines):
        row = json.loads(line)
        assert row["path"] == path
        assert row["label"] in ("Cyst", "Normal", "Stone", "Tumor")
        assert set(row["probabilities"]) == {"Cyst", "Normal", "Stone", "Tumor"}
        assert row["out_of_scope"] in (True, False)


def test_predict_reports_an_unreadable_file_and_fails(trained_model, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    assert main(["predict", "--model", str(trained_model.model_path), str(bad)]) == 1
    row = json.loads(capsys.readouterr().out.strip())
    assert row["path"] == str(bad) and "cannot decode" in row["error"]


def test_train_refuses_a_missing_data_folder_in_one_line(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "m.keras"), "--epochs", "1"])

    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: data folder not found: {tmp_path / 'none'}"


@pytest.mark.parametrize("content, message", [
    ("train:\n  epochs: abc\n", "params.epochs must be a whole number, not 'abc'"),
    ("train: [1, 2]\n", "train must be a mapping"),
    ("train:\n  augment:\n    zoom: 2.0\n", "augment.zoom must be between 0 and 1"),
    ("train:\n  dropout: 1.5\n", "dropout and label_smoothing must be in [0, 1)"),
    ("train: {epochs: 3\n", "while parsing a flow mapping"),
])
def test_a_bad_params_file_is_refused_in_one_line_before_anything_runs(tmp_path, capsys, content, message):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(content)

    assert main(["train", "--params", str(params_file), "--out", str(tmp_path / "m.keras")]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error and not (tmp_path / "m.keras").exists()


def test_predict_with_a_broken_model_file_says_so_in_one_line(trained_model, tmp_path, capsys):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a keras archive")
    broken.with_suffix(".json").write_bytes(trained_model.model_path.with_suffix(".json").read_bytes())

    assert main(["predict", "--model", str(broken), "image.png"]) == 2
    assert f"error: {broken} is not a loadable Keras model" in capsys.readouterr().err


def test_cross_validate_refuses_a_folder_as_out_before_training(tmp_path, synthetic_dataset, capsys):
    code = main(["cross-validate", "--data", str(synthetic_dataset), "--out", str(tmp_path), "--no-track"])

    assert code == 2 and f"--out {tmp_path} is a folder" in capsys.readouterr().err


def test_train_without_out_writes_the_model_config_yaml_names(tmp_path, synthetic_dataset):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("train:\n  image_size: 32\n  epochs: 1\n  batch_size: 16\n"
                           "  split:\n    val_fraction: 0.25\n    test_fraction: 0.25\n")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"model_out: {tmp_path / 'named.keras'}\n")

    assert main(["train", "--data", str(synthetic_dataset), "--params", str(params_file), "--config", str(config_file),
                 "--artifacts", str(tmp_path / "artifacts"), "--no-track"]) == 0

    assert (tmp_path / "named.keras").is_file() and (tmp_path / "named.json").is_file()


def test_train_options_override_params_yaml(tmp_path):
    import argparse

    from mlcore.cli import _params

    params_file = tmp_path / "params.yaml"
    params_file.write_text("train:\n  members: 3\n  width: 32\n  epochs: 9\n")
    args = argparse.Namespace(params=str(params_file), members=2, width=16, epochs=None)
    train = _params(args).train
    assert (train.members, train.width, train.epochs) == (2, 16, 9)


def test_score_confidence_records_the_split_in_a_card_written_before_it_existed(trained_model, synthetic_dataset,
                                                                                tmp_path, capsys):
    import shutil

    from mlcore.card import card_path_for, read_card

    model = tmp_path / "older.keras"
    shutil.copy(trained_model.model_path, model)
    older = json.loads(card_path_for(trained_model.model_path).read_text())
    recorded = older["metrics"]["test_series_split"].pop("by_confidence")
    card_path_for(model).write_text(json.dumps(older))

    assert main(["score-confidence", "--model", str(model), "--data", str(synthetic_dataset)]) == 0

    card = read_card(model)
    scored = card.metrics["test_series_split"]["by_confidence"]
    assert scored == json.loads(capsys.readouterr().out)
    assert (scored["threshold"], scored["confident"]["slices"] + scored["uncertain"]["slices"]) == (
        recorded["threshold"], recorded["confident"]["slices"] + recorded["uncertain"]["slices"])
    assert {k: v for k, v in card.metrics["test_series_split"].items() if k != "by_confidence"} == (
        older["metrics"]["test_series_split"])  # nothing else in the card changed


def test_score_confidence_refuses_a_card_without_a_test_split_in_one_line(trained_model, tmp_path, capsys):
    import shutil

    from mlcore.card import card_path_for

    model = tmp_path / "untested.keras"
    shutil.copy(trained_model.model_path, model)
    card = json.loads(card_path_for(trained_model.model_path).read_text())
    card["metrics"] = {}
    card_path_for(model).write_text(json.dumps(card))

    assert main(["score-confidence", "--model", str(model), "--data", str(tmp_path)]) == 2
    assert "records no series test split" in capsys.readouterr().err
