"""Which params.yaml values a run may change, and the checks mlcore's own config makes."""

import pytest

from training import params as run_params
from training.params import ParamsError, resolve


@pytest.fixture(autouse=True)
def tiny_params(settings, tiny_params_file):
    settings.KIDNEYWEB_TRAINING_PARAMS = tiny_params_file


def test_standard_is_params_yaml_as_it_is():
    clean, params = resolve(preset="standard")

    assert clean == {}
    assert params.train == run_params.base_params().train


def test_overrides_change_only_their_values():
    clean, params = resolve(overrides={"epochs": 4, "learning_rate": 1, "architecture": "vgg16"})

    assert clean == {"epochs": 4, "learning_rate": 1.0, "architecture": "vgg16"}
    assert (params.train.epochs, params.train.learning_rate, params.train.architecture) == (4, 1.0, "vgg16")
    assert resolve(overrides={"width": 16})[1].train.width == 16
    assert params.train.batch_size == run_params.base_params().train.batch_size


def test_quick_caps_the_epochs_and_an_override_wins(settings, tmp_path):
    settings.KIDNEYWEB_TRAINING_PARAMS = tmp_path / "params.yaml"
    settings.KIDNEYWEB_TRAINING_PARAMS.write_text("train:\n  epochs: 20\n")

    assert resolve(preset="quick")[1].train.epochs == 3
    assert resolve(preset="quick", overrides={"epochs": 5})[1].train.epochs == 5


@pytest.mark.parametrize("overrides, message", [
    ({"architecture": "alexnet"}, "unknown architecture 'alexnet'"),
    ({"image_size": 16}, "between 32 and 512"),
    ({"epochs": 0}, "between 1 and 500"),
    ({"width": 4}, "width must be between 8 and 64"),
    ({"epochs": "many"}, "epochs must be a whole number"),
    ({"epochs": 2.5}, "epochs must be a whole number"),
    ({"class_weighting": 1}, "class_weighting must be true or false"),
    ({"split": {"test_fraction": 0.5}}, "The split is locked"),
    ({"weights": "/etc/passwd"}, "not per run"),
    ({"epoch": 3}, "Unknown parameter 'epoch'"),
    ({"augment": {"sparkle": True}}, "unknown keys in augment"),
    ({"weight_decay": float("inf")}, "weight_decay must be a finite number"),
    ({"learning_rate": float("nan")}, "learning_rate must be between"),
    ({"dropout": float("nan")}, "dropout must be a finite number"),
    ({"augment": {"zoom": float("-inf")}}, "augment.zoom must be a finite number"),
    ({"augment": {"rotation": "\x00"}}, "augment.rotation must be a number"),
    ({"augment": {"zoom": [1, 2]}}, "augment.zoom must be a number"),
    ({"augment": {"mixup_alpha": -1}}, "augment.mixup_alpha must be 0 \\(off\\) or more"),
    ({"augment": {"erasing": 2}}, "augment.erasing must be between 0 and 1"),
    ({"dropout": 5}, "dropout"),
    ({"label_smoothing": 7}, "label_smoothing"),
    ({"seed": -1}, "seed"),
    ({"seed": 1e23}, "seed must be a whole number"),
])
def test_bad_values_are_refused_with_a_message(overrides, message):
    with pytest.raises(ParamsError, match=message):
        resolve(overrides=overrides)


def test_an_unknown_preset_is_refused():
    with pytest.raises(ParamsError, match="Unknown preset 'huge'"):
        resolve(preset="huge")


def test_params_must_be_an_object():
    with pytest.raises(ParamsError, match="must be an object"):
        resolve(overrides=["epochs", 3])


def test_an_ensemble_size_can_be_chosen_and_quick_trains_one_network(settings, tmp_path):
    settings.KIDNEYWEB_TRAINING_PARAMS = tmp_path / "params.yaml"
    settings.KIDNEYWEB_TRAINING_PARAMS.write_text("train:\n  epochs: 20\n  members: 3\n")

    assert resolve()[1].train.members == 3
    assert resolve(overrides={"members": 2})[1].train.members == 2
    assert resolve(preset="quick")[1].train.members == 1
    with pytest.raises(ParamsError, match="between 1 and 5"):
        resolve(overrides={"members": 9})


def test_another_architecture_trains_one_network_unless_members_are_asked_for(settings, tmp_path):
    settings.KIDNEYWEB_TRAINING_PARAMS = tmp_path / "params.yaml"
    settings.KIDNEYWEB_TRAINING_PARAMS.write_text("train:\n  members: 3\n")

    assert resolve(overrides={"architecture": "vgg16"})[1].train.members == 1
    with pytest.raises(ParamsError, match="resnet_small networks only"):
        resolve(overrides={"architecture": "vgg16", "members": 2})


def test_a_refit_can_be_asked_for_and_quick_leaves_it_out(settings, tmp_path):
    settings.KIDNEYWEB_TRAINING_PARAMS = tmp_path / "params.yaml"
    settings.KIDNEYWEB_TRAINING_PARAMS.write_text("train:\n  epochs: 20\n  refit: true\n")

    assert resolve()[1].train.refit is True
    assert resolve(overrides={"refit": False})[1].train.refit is False
    assert resolve(preset="quick")[1].train.refit is False
    with pytest.raises(ParamsError, match="refit must be true or false"):
        resolve(overrides={"refit": "yes"})
