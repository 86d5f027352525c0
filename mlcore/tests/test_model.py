import numpy as np
import pytest

from mlcore.model import build_model, last_conv_layer_name

CLASSES = ("Cyst", "Normal", "Stone", "Tumor")


@pytest.fixture(scope="module")
def model():
    return build_model(class_names=CLASSES, image_size=32, augment=False)


@pytest.mark.parametrize("shape", [(1, 64, 64, 1), (2, 100, 80, 3), (1, 512, 512, 3)])
def test_model_takes_any_size_grey_or_rgb_and_returns_probabilities(model, shape):
    images = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    out = np.asarray(model.predict_on_batch(images))
    assert out.shape == (shape[0], 4)
    assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_grey_image_and_its_rgb_copy_get_the_same_probabilities(model):
    grey = np.random.default_rng(1).integers(0, 255, (1, 48, 48, 1), dtype=np.uint8)
    rgb = np.repeat(grey, 3, axis=-1)
    assert np.allclose(model.predict_on_batch(grey), model.predict_on_batch(rgb), atol=1e-5)


def test_saved_model_reloads_with_its_preprocessing(tmp_path, model):
    import keras

    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    images = np.random.default_rng(2).integers(0, 255, (1, 70, 70, 1), dtype=np.uint8)
    assert np.allclose(model.predict_on_batch(images), reloaded.predict_on_batch(images), atol=1e-6)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(class_names=CLASSES, architecture="alexnet")


def test_the_last_feature_map_is_found_for_grad_cam(model):
    name = last_conv_layer_name(model)
    assert len(model.get_layer(name).output.shape) == 4
    assert name.startswith("stage4")


def test_group_normalised_model_normalises_the_same_way_in_training_and_inference():
    """Batch norm's running averages can lag the weights; group norm has none to lag."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (4, 40, 40, 1), dtype=np.uint8)
    outputs = {}
    for kind in ("group", "batch"):
        model = build_model(class_names=CLASSES, image_size=32, augment=False, normalization=kind, dropout=0.0)
        outputs[kind] = (np.asarray(model(images, training=True)), np.asarray(model(images, training=False)))
    assert np.allclose(*outputs["group"], atol=1e-5)
    assert not np.allclose(*outputs["batch"], atol=1e-5)


def test_unknown_normalization_is_refused():
    from mlcore.config import TrainConfig

    with pytest.raises(ValueError, match="normalization"):
        TrainConfig(normalization="layer")


@pytest.mark.parametrize("architecture", ["resnet50", "vgg16"])
def test_keras_application_backbones_take_grey_slices(architecture):
    model = build_model(class_names=CLASSES, image_size=64, architecture=architecture, augment=False)
    out = np.asarray(model.predict_on_batch(np.zeros((1, 80, 80, 1), np.uint8)))
    assert out.shape == (1, 4)
    if architecture == "resnet50":
        assert any("conv5_block3" in layer.name for layer in model.get_layer("resnet50").layers)


def test_standardised_model_ignores_global_brightness_and_contrast():
    model = build_model(class_names=CLASSES, image_size=32, augment=False, standardize=True)
    image = np.random.default_rng(5).integers(40, 160, (1, 48, 48, 1)).astype(np.uint8)
    brighter = (image.astype(np.float32) * 1.5 + 10).astype(np.uint8)
    assert np.allclose(model.predict_on_batch(image), model.predict_on_batch(brighter), atol=1e-3)


def test_calibration_layer_offsets_move_the_decision_and_survive_saving(tmp_path):
    import keras

    from mlcore.model import TemperatureScaling

    probabilities = np.array([[0.6, 0.3, 0.05, 0.05], [0.1, 0.2, 0.3, 0.4]], dtype="float32")
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, TemperatureScaling(2.0, [0.0, 1.0, 0.0, 0.0], name="calibrated")(inputs))
    path = tmp_path / "calibrated.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    out = np.asarray(reloaded.predict_on_batch(probabilities))
    want = np.exp((np.log(probabilities) + [0.0, 1.0, 0.0, 0.0]) / 2.0)
    assert np.allclose(out, want / want.sum(axis=1, keepdims=True), atol=1e-5)
    assert out[0].argmax() == 1  # 0.3·e beats 0.6


def test_a_calibration_layer_saved_without_offsets_loads_with_none():
    from mlcore.model import TemperatureScaling

    layer = TemperatureScaling.from_config({"name": "calibrated", "temperature": 0.5, "trainable": True})
    assert layer.offsets is None and layer.temperature == 0.5


def test_random_erasing_blanks_a_rectangle_of_some_slices_in_training_only():
    import keras

    from mlcore.config import AugmentConfig

    only_erasing = AugmentConfig(flip=False, rotation=0.0, zoom=0.0, shift=0.0, contrast=0.0, erasing=0.5)
    model = build_model(class_names=CLASSES, image_size=32, augment=only_erasing, width=8)
    augmented = keras.Model(model.input, model.get_layer("aug_erasing").output)
    grey = np.full((32, 32, 32, 1), 128, np.uint8)
    changed = np.abs(np.asarray(augmented(grey, training=True)) - 128 / 255).max(axis=(1, 2, 3)) > 1e-3
    assert 4 <= changed.sum() <= 28  # about half of 32 slices, not all and not none
    assert np.allclose(np.asarray(augmented(grey, training=False)), 128 / 255)


def test_erasing_outside_zero_to_one_is_refused():
    from mlcore.config import AugmentConfig

    with pytest.raises(ValueError, match="augment.erasing must be between 0 and 1"):
        AugmentConfig(erasing=1.5)


def test_mixstyle_gives_each_slice_a_blend_of_the_batchs_statistics_in_training_and_nothing_at_inference():
    from mlcore.model import MixStyle

    rng = np.random.default_rng(0)
    # Four "patients", each its own brightness and contrast (the statistics) over the same content.
    content = rng.normal(size=(1, 8, 8, 3)).astype("float32")
    content = (content - content.mean(axis=(1, 2), keepdims=True)) / content.std(axis=(1, 2), keepdims=True)
    means, spreads = np.array([0.0, 5.0, 10.0, 20.0]), np.array([1.0, 2.0, 3.0, 4.0])
    batch = (content * spreads[:, None, None, None] + means[:, None, None, None]).astype("float32")
    layer = MixStyle(probability=1.0, alpha=0.1, seed=1)

    mixed = np.asarray(layer(batch, training=True))

    assert np.allclose(np.asarray(layer(batch, training=False)), batch)
    got_means, got_spreads = mixed.mean(axis=(1, 2))[:, 0], mixed.std(axis=(1, 2))[:, 0]
    assert not np.allclose(got_means, means, atol=0.05)  # some slices took on another's look...
    assert np.all((got_means >= -1e-3) & (got_means <= 20 + 1e-3))  # ...a blend of the batch's, nothing else
    assert np.all((got_spreads >= 1 - 1e-2) & (got_spreads <= 4 + 1e-2))
    normalised = (mixed - mixed.mean(axis=(1, 2), keepdims=True)) / mixed.std(axis=(1, 2), keepdims=True)
    assert np.allclose(normalised, np.broadcast_to(content, normalised.shape), atol=1e-3)  # the content is kept
    assert np.allclose(np.asarray(MixStyle(probability=0.0)(batch, training=True)), batch)


def test_mixstyle_layers_are_in_the_training_network_only_and_survive_a_save(tmp_path):
    import keras

    from mlcore.config import AugmentConfig

    trained = build_model(class_names=CLASSES, image_size=32, width=8, augment=AugmentConfig(mixstyle=0.5))
    shipped = build_model(class_names=CLASSES, image_size=32, width=8, augment=False)

    assert [layer.name for layer in trained.layers if "mixstyle" in layer.name] == ["aug_mixstyle1", "aug_mixstyle2"]
    assert not [layer for layer in shipped.layers if "mixstyle" in layer.name]
    trained.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").get_layer("aug_mixstyle2").probability == 0.5
    with pytest.raises(ValueError, match="augment.mixstyle must be between 0 and 1"):
        AugmentConfig(mixstyle=2.0)
    with pytest.raises(ValueError, match="mixstyle mixes the statistics of resnet_small"):
        build_model(class_names=CLASSES, image_size=32, architecture="vgg16", augment=AugmentConfig(mixstyle=0.5))


def test_the_top_hat_channel_keeps_a_small_bright_spot_and_drops_a_large_bright_region():
    import keras

    from mlcore.model import WhiteTopHat, tophat_size

    image = np.full((1, 64, 64, 1), 0.2, dtype="float32")
    image[0, 10:13, 10:13] = 1.0   # a stone-sized spot, 3 px
    image[0, 30:60, 30:60] = 0.9   # an organ-sized bright region, 30 px
    out = keras.ops.convert_to_numpy(WhiteTopHat(tophat_size(0.1, 64))(image))

    assert out.shape == (1, 64, 64, 2)
    assert np.allclose(out[..., 0], image[..., 0])  # the slice itself is kept as the first channel
    assert out[0, 11, 11, 1] == pytest.approx(0.8)
    assert np.abs(out[0, 32:58, 32:58, 1]).max() < 1e-6
    assert tophat_size(0.04, 224) == 9 and tophat_size(0.04, 128) == 5 and tophat_size(0.0, 224) == 0


def test_a_model_with_the_top_hat_channel_saves_and_reloads_and_takes_rgb(tmp_path):
    import keras

    model = build_model(class_names=CLASSES, image_size=32, augment=False, tophat=0.1, normalization="group", width=8)
    assert model.get_layer("stem_conv").kernel.shape[2] == 2
    path = tmp_path / "tophat.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    images = np.random.default_rng(3).integers(0, 255, (2, 50, 50, 3), dtype=np.uint8)
    assert np.allclose(model.predict_on_batch(images), reloaded.predict_on_batch(images), atol=1e-6)
    assert last_conv_layer_name(model) != "tophat"


def test_the_top_hat_channel_is_refused_for_keras_application_backbones():
    from mlcore.config import TrainConfig

    with pytest.raises(ValueError, match="tophat is a second input channel of resnet_small"):
        TrainConfig(architecture="vgg16", tophat=0.04)
    with pytest.raises(ValueError, match=r"tophat must be in \[0, 0.25\]"):
        TrainConfig(tophat=0.5)


def _framed_body(size: int = 64, top: int = 8, left: int = 12, side: int = 24) -> np.ndarray:
    """A grey square 'body' with a bright 'calculus' in its middle, small in a black field, above a thin couch line."""
    image = np.zeros((1, size, size, 1), dtype="float32")
    image[0, top:top + side, left:left + side] = 100.0
    image[0, top + side // 2, left + side // 2] = 250.0
    image[0, size - 4, :] = 200.0  # the couch: bright but one pixel thick
    return image


def test_body_crop_zooms_a_small_body_to_fill_the_slice_and_ignores_the_couch_line():
    import keras

    from mlcore.model import BodyCrop

    image = _framed_body()
    crop = BodyCrop(erode=3, margin=0.0, min_side=0.25)
    out = keras.ops.convert_to_numpy(crop(image))
    scale, x0, y0 = (float(keras.ops.convert_to_numpy(v)[0]) for v in crop.boxes(image))

    assert out.shape == image.shape
    assert scale == pytest.approx(24 / 64)                    # the couch line did not widen the box
    assert (x0, y0) == (pytest.approx(12 - 0.5 + 0.5 * scale, abs=0.02), pytest.approx(8 - 0.5 + 0.5 * scale, abs=0.02))
    assert (out[0, 2:-2, 2:-2, 0] > 50).mean() > 0.95            # the body now fills the slice
    assert (out[0, ..., 0] > 150).sum() > (image[0, :-8, :, 0] > 150).sum()  # and the calculus spans more pixels


def test_body_crop_leaves_a_blank_slice_and_a_slice_filled_edge_to_edge_as_they_are():
    import keras

    from mlcore.model import BodyCrop

    blank = np.zeros((1, 32, 32, 1), dtype="float32")
    full = np.random.default_rng(0).uniform(60, 200, (1, 32, 32, 1)).astype("float32")
    crop = BodyCrop(erode=3)

    assert np.allclose(keras.ops.convert_to_numpy(crop(blank)), 0.0)
    assert np.allclose(keras.ops.convert_to_numpy(crop(full)), full, atol=1e-3)


def test_a_model_with_body_crop_saves_and_reloads_with_its_crop_and_grad_cam_skips_it(tmp_path):
    import keras

    model = build_model(class_names=CLASSES, image_size=64, augment=False, body_crop=True, normalization="group",
                        width=8)
    path = tmp_path / "crop.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    small = np.repeat(_framed_body(size=64).astype(np.uint8), 3, axis=-1)
    assert np.allclose(model.predict_on_batch(small), reloaded.predict_on_batch(small), atol=1e-6)
    assert last_conv_layer_name(model) != "body_crop"
    assert [layer.name for layer in model.layers][:5] == ["image", "grayscale", "resize", "body_crop", "crop_resize"]
    assert model.get_layer("resize").output.shape[1:3] == (128, 128)  # cropped at twice the input size
