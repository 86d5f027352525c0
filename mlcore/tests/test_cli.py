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


def test_train_refuses_a_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "m.keras"), "--epochs", "1"])


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
