"""Several small ResNets shipped as one model that averages their probabilities."""

import numpy as np
import pytest

from mlcore.config import POOLINGS, TrainConfig
from mlcore.model import build_model, ensemble_model, last_conv_layer_name

CLASSES = ("Cyst", "Normal", "Stone", "Tumor")


@pytest.fixture(scope="module", params=POOLINGS)
def pooling(request):
    return request.param


@pytest.fixture(scope="module")
def members(pooling):
    return [build_model(class_names=CLASSES, image_size=32, augment=False, seed=seed, normalization="group",
                        pooling=pooling) for seed in (1, 2)]


@pytest.fixture(scope="module")
def ensemble(members, pooling):
    return ensemble_model(members, class_names=CLASSES, image_size=32, normalization="group", pooling=pooling)


def test_ensemble_returns_the_mean_of_its_members_probabilities(members, ensemble):
    images = np.random.default_rng(0).integers(0, 255, (3, 60, 60, 1), dtype=np.uint8)
    outputs = [np.asarray(m.predict_on_batch(images)) for m in members]
    assert not np.allclose(outputs[0], outputs[1], atol=1e-3)  # the members really differ
    assert np.allclose(np.asarray(ensemble.predict_on_batch(images)), np.mean(outputs, axis=0), atol=1e-5)


def test_ensemble_saves_and_reloads_with_the_same_outputs(tmp_path, ensemble):
    import keras

    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    images = np.random.default_rng(1).integers(0, 255, (2, 256, 256, 3), dtype=np.uint8)
    assert np.allclose(ensemble.predict_on_batch(images), reloaded.predict_on_batch(images), atol=1e-6)


def test_grad_cam_explains_the_ensemble_through_all_members_feature_maps(ensemble):
    from mlcore.explain import Explainer

    name = last_conv_layer_name(ensemble)
    assert name == "ensemble_features"
    assert ensemble.get_layer(name).output.shape[-1] == 2 * 256
    image = np.random.default_rng(2).integers(0, 255, (64, 64), dtype=np.uint8)
    cam = Explainer(ensemble, CLASSES).explain(image)
    assert cam.heatmap.shape == (64, 64)
    assert cam.class_name in CLASSES


def test_an_ensemble_needs_two_members(members):
    with pytest.raises(ValueError, match="at least two"):
        ensemble_model(members[:1], class_names=CLASSES, image_size=32)


def test_ensembles_of_application_backbones_are_refused():
    with pytest.raises(ValueError, match="resnet_small"):
        TrainConfig(architecture="resnet50", members=2)


def test_ema_momentum_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="ema_momentum"):
        TrainConfig(ema_momentum=1.0)


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling"):
        TrainConfig(pooling="median")
    with pytest.raises(ValueError, match="pooling"):
        build_model(class_names=CLASSES, image_size=32, augment=False, pooling="median")


def test_avgmax_pool_holds_the_average_and_the_maximum_of_each_feature():
    import keras

    model = build_model(class_names=CLASSES, image_size=32, augment=False, normalization="group", pooling="avgmax")
    images = np.random.default_rng(3).integers(0, 255, (2, 40, 40, 1), dtype=np.uint8)
    maps, pooled = keras.Model(model.input, [model.get_layer(last_conv_layer_name(model)).output,
                                              model.get_layer("pool").output]).predict_on_batch(images)
    maps, pooled = np.asarray(maps), np.asarray(pooled)
    width = maps.shape[-1]
    assert np.allclose(pooled[:, :width], maps.mean(axis=(1, 2)), atol=1e-5)
    assert np.allclose(pooled[:, width:], maps.max(axis=(1, 2)), atol=1e-5)


def test_narrow_members_make_a_smaller_ensemble_that_still_averages_them():
    narrow = [build_model(class_names=CLASSES, image_size=32, augment=False, seed=seed, normalization="group",
                          width=16) for seed in (1, 2)]
    wide = build_model(class_names=CLASSES, image_size=32, augment=False, seed=1, normalization="group")
    # Half the channels in every stage: about a quarter of the weights.
    assert narrow[0].count_params() < wide.count_params() / 3.5
    ensemble = ensemble_model(narrow, class_names=CLASSES, image_size=32, normalization="group", width=16)
    assert ensemble.get_layer("ensemble_features").output.shape[-1] == 2 * 128
    images = np.random.default_rng(3).integers(0, 255, (2, 48, 48, 1), dtype=np.uint8)
    outputs = [np.asarray(m.predict_on_batch(images)) for m in narrow]
    assert np.allclose(np.asarray(ensemble.predict_on_batch(images)), np.mean(outputs, axis=0), atol=1e-5)


def test_members_with_the_top_hat_channel_average_as_one_model():
    members = [build_model(class_names=CLASSES, image_size=32, augment=False, seed=seed, normalization="group",
                           tophat=0.1, width=8) for seed in (1, 2)]
    ensemble = ensemble_model(members, class_names=CLASSES, image_size=32, normalization="group", width=8, tophat=0.1)
    images = np.random.default_rng(4).integers(0, 255, (2, 40, 40, 1), dtype=np.uint8)
    outputs = [np.asarray(m.predict_on_batch(images)) for m in members]
    assert np.allclose(np.asarray(ensemble.predict_on_batch(images)), np.mean(outputs, axis=0), atol=1e-5)
