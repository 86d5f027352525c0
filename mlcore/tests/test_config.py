import pytest

from mlcore.config import Params, Paths, SplitConfig, TrainConfig, load_params, load_paths, recorded_split


def test_params_file_loads_into_frozen_dataclasses(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 3\n  augment:\n    zoom: 0.2\n  split:\n    seed: 7\nevaluate:\n  confidence_threshold: 0.8\n")
    params = load_params(path)
    assert params.train.epochs == 3 and params.train.augment.zoom == 0.2 and params.train.split.seed == 7
    assert params.train.augment.flip is True  # untouched defaults stay
    assert params.evaluate.confidence_threshold == 0.8
    with pytest.raises(Exception):
        params.train.epochs = 5  # frozen


def test_a_misspelt_parameter_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epocs: 3\n")
    with pytest.raises(ValueError, match="epocs"):
        load_params(path)


def test_overrides_replace_single_values_and_nested_ones():
    config = TrainConfig().with_overrides({"epochs": 2, "split": {"test_fraction": 0.3}})
    assert config.epochs == 2 and config.split.test_fraction == 0.3 and config.split.val_fraction == 0.15


def test_invalid_values_are_refused():
    with pytest.raises(ValueError):
        TrainConfig(architecture="alexnet")
    with pytest.raises(ValueError):
        TrainConfig().with_overrides({"split": {"val_fraction": 0.6, "test_fraction": 0.5}})
    with pytest.raises(ValueError, match="series_weighting"):
        TrainConfig(series_weighting=1.5)
    with pytest.raises(ValueError, match="width"):
        TrainConfig(width=2)
    with pytest.raises(ValueError, match="focal_gamma"):
        TrainConfig(focal_gamma=-1.0)
    with pytest.raises(ValueError, match="sampling"):
        TrainConfig(sampling="oversample")


def test_a_seed_numpy_and_tensorflow_cannot_take_is_refused():
    with pytest.raises(ValueError, match="seed must be between 0 and 2147483647, not 10000000000"):
        TrainConfig(seed=10**10)
    with pytest.raises(ValueError, match="split seed must be between"):
        TrainConfig().with_overrides({"split": {"seed": 2**32}})
    assert TrainConfig(seed=2**31 - 1).seed == 2**31 - 1


def test_config_yaml_extra_manifests_must_be_a_list(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("extra_manifests: reviewed/manifest.csv\n")
    with pytest.raises(ValueError, match="extra_manifests must be a list of CSV files"):
        load_paths(config)
    config.write_text("model_out: 3\n")
    with pytest.raises(ValueError, match="model_out must be a path"):
        load_paths(config)


def test_repository_params_and_config_files_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert isinstance(load_params(root / "params.yaml"), Params)


def test_the_pipeline_writes_the_model_the_repository_ships_and_that_file_exists():
    from pathlib import Path

    from mlcore import SHIPPED_MODEL

    root = Path(__file__).resolve().parents[2]
    assert load_paths(root / "config.yaml").model_out == Path(SHIPPED_MODEL) == Paths().model_out
    assert (root / SHIPPED_MODEL).is_file() and (root / SHIPPED_MODEL).with_suffix(".json").is_file()


def test_data_dir_comes_from_the_environment_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("KIDNEY_DATA_DIR", str(tmp_path))
    assert load_paths(tmp_path / "absent.yaml").data_dir == tmp_path


def test_a_card_written_before_a_split_option_reads_as_the_split_its_model_had():
    # v3's card: no stratify_by_view, which did not exist yet; the default is the split of that time.
    older = {"params": {"train": {"split": {"val_fraction": 0.15, "test_fraction": 0.15, "seed": 42,
                                            "method": "series", "a_later_removed_key": 1}}}}

    split = recorded_split(older)

    assert split == SplitConfig(val_fraction=0.15, test_fraction=0.15, seed=42)
    assert split.stratify_by_view is False
    assert recorded_split({"params": {}}) is None and recorded_split(None) is None
