"""Model architectures.

Greyscale conversion, resizing, scaling and augmentation are layers of the model, so
the saved file takes any image size, grey or RGB, as uint8 pixels, and inference
can never drift from what training saw. The custom layers live in ``mlcore.model.custom_layers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
from keras import layers

from mlcore.config import ARCHITECTURES, POOLINGS, AugmentConfig, TrainConfig
from mlcore.model.custom_layers import (BodyCrop, ChannelSlice, Grayscale, MahalanobisDistance,  # noqa: F401
                                        MixStyle, Standardize, TemperatureScaling, WhiteTopHat, tophat_size)

# Few steps per epoch on a small data set: slow moving averages would lag the weights
# and make inference-mode outputs disagree with training-mode ones.
BN_MOMENTUM = 0.9


def _norm(kind: str, name: str) -> layers.Layer:
    if kind == "group":
        # No running statistics: training and inference normalise the same way, whatever the batch.
        return layers.GroupNormalization(groups=8, name=name)
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def _residual_block(x, filters: int, stride: int, name: str, weight_decay: float, normalization: str = "batch"):
    regularizer = keras.regularizers.l2(weight_decay) if weight_decay else None
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                      kernel_regularizer=regularizer, name=f"{name}_conv1")(x)
    y = _norm(normalization, f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                      kernel_regularizer=regularizer, name=f"{name}_conv2")(y)
    y = _norm(normalization, f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                 kernel_regularizer=regularizer, name=f"{name}_proj")(shortcut)
        shortcut = _norm(normalization, f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _resnet_small(x, weight_decay: float, normalization: str = "batch", width: int = 32,
                  blocks: Sequence[int] = (1, 2, 2, 1), prefix: str = "", mixstyle: float = 0.0, seed: int = 0):
    """A ResNet-18-style network, narrower, for a few thousand greyscale slices on a CPU. ``mixstyle`` adds
    MixStyle after the first two stages (where the statistics are style more than content), for training."""
    widths = [width * 2 ** stage for stage in range(len(blocks))]
    regularizer = keras.regularizers.l2(weight_decay) if weight_decay else None
    x = layers.Conv2D(widths[0], 5, strides=2, padding="same", use_bias=False,
                      kernel_regularizer=regularizer, name=f"{prefix}stem_conv")(x)
    x = _norm(normalization, f"{prefix}stem_bn")(x)
    x = layers.Activation("relu", name=f"{prefix}stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}stem_pool")(x)
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        for block in range(count):
            stride = 2 if block == 0 and stage > 0 else 1
            x = _residual_block(x, width, stride, f"{prefix}stage{stage + 1}_block{block + 1}", weight_decay,
                                normalization)
        if mixstyle and stage < 2:
            x = MixStyle(mixstyle, seed=seed + stage, name=f"aug_mixstyle{stage + 1}")(x)
    return x


def _augmentation(x, augment: AugmentConfig, seed: int):
    # Active only in training: slices vary in position, zoom and contrast between scanners and patients.
    if augment.flip:
        x = layers.RandomFlip("horizontal", seed=seed, name="aug_flip")(x)
    if augment.rotation:
        x = layers.RandomRotation(augment.rotation, fill_mode="constant", seed=seed, name="aug_rotate")(x)
    if augment.zoom:
        x = layers.RandomZoom(augment.zoom, fill_mode="constant", seed=seed, name="aug_zoom")(x)
    if augment.shift:
        x = layers.RandomTranslation(augment.shift, augment.shift, fill_mode="constant", seed=seed, name="aug_shift")(x)
    if augment.contrast:
        x = layers.RandomContrast(augment.contrast, seed=seed, name="aug_contrast")(x)
    if augment.brightness:
        x = layers.RandomBrightness(augment.brightness, value_range=(0.0, 1.0), seed=seed, name="aug_brightness")(x)
    if augment.erasing:
        x = layers.RandomErasing(factor=(augment.erasing, augment.erasing), value_range=(0.0, 1.0), seed=seed,
                                 name="aug_erasing")(x)
    return x


def model_for(config: TrainConfig, *, class_names: Sequence[str], seed: int, trainable: bool = True) -> keras.Model:
    """The configured classifier: for training (augmentation, pretrained weights) or, with
    ``trainable=False``, in the shipped form that a trained network's weights are copied into."""
    return build_model(class_names=class_names, image_size=config.image_size, architecture=config.architecture,
                       augment=config.augment if trainable else False, seed=seed,
                       weight_decay=config.weight_decay, dropout=config.dropout,
                       normalization=config.normalization, standardize=config.standardize,
                       pooling=config.pooling, width=config.width, tophat=config.tophat,
                       body_crop=config.body_crop, weights_path=Path(config.weights) if trainable and config.weights else None)


def build_model(
    *,
    class_names: Sequence[str],
    image_size: int = 256,
    architecture: str = "resnet_small",
    augment: AugmentConfig | bool = True,
    seed: int = 0,
    weight_decay: float = 1e-4,
    dropout: float = 0.3,
    weights_path: Path | None = None,
    normalization: str = "batch",
    standardize: bool = False,
    pooling: str = "avg",
    width: int = 32,
    tophat: float = 0.0,
    body_crop: bool = False,
) -> keras.Model:
    """Build an uncompiled classifier taking uint8 images of any size with 1 or 3 channels."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
    if isinstance(augment, bool):
        augment = AugmentConfig(enabled=augment)
    if augment.enabled and augment.mixstyle and architecture != "resnet_small":
        raise ValueError("mixstyle mixes the statistics of resnet_small's stages; other architectures have none here")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(None, None, None), name="image")
    x = _preprocess(inputs, image_size, standardize=False, body_crop=body_crop)
    if augment.enabled:
        x = _augmentation(x, augment, seed)
    if tophat:
        if architecture != "resnet_small":
            raise ValueError("tophat is a second input channel of resnet_small networks only")
        x = WhiteTopHat(tophat_size(tophat, image_size), name="tophat")(x)
    if standardize:
        x = Standardize(name="standardize")(x)

    if architecture == "resnet_small":
        features = _resnet_small(x, weight_decay, normalization, width,
                                 mixstyle=augment.mixstyle if augment.enabled else 0.0, seed=seed)
    else:
        rgb = layers.Concatenate(axis=-1, name="to_rgb")([x, x, x])
        application = {"resnet50": keras.applications.ResNet50, "vgg16": keras.applications.VGG16}[architecture]
        backbone = application(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
        if weights_path is not None:
            backbone.load_weights(str(weights_path))
        features = backbone(rgb)
    x = _pool(features, pooling)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = layers.Dense(len(class_names), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"kidney_{architecture}")
    if architecture == "resnet_small" and weights_path is not None:
        from mlcore.pretrain import load_backbone  # a contrastively pretrained encoder (mlcore pretrain)

        load_backbone(model, weights_path)
    return model


def _pool(features, pooling: str):
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="pool")(features)
    return layers.Concatenate(name="pool")([layers.GlobalAveragePooling2D(name="pool_avg")(features),
                                            layers.GlobalMaxPooling2D(name="pool_max")(features)])


def _preprocess(inputs, image_size: int, standardize: bool, body_crop: bool = False):
    x = Grayscale(name="grayscale")(inputs)
    if body_crop:
        # Crop at twice the input size, then shrink: the zoomed body keeps the detail of the slice as given
        # instead of enlarging an already shrunken one.
        x = layers.Resizing(2 * image_size, 2 * image_size, interpolation="bilinear", antialias=True, name="resize")(x)
        x = BodyCrop(name="body_crop")(x)
        x = layers.Resizing(image_size, image_size, interpolation="bilinear", antialias=True, name="crop_resize")(x)
    else:
        x = layers.Resizing(image_size, image_size, interpolation="bilinear", antialias=True, name="resize")(x)
    x = layers.Rescaling(1.0 / 255.0, name="scale")(x)
    return Standardize(name="standardize")(x) if standardize else x


# resnet_small's convolutions and their normalisation: what a pretrained encoder carries and what a
# first, frozen phase of fine-tuning holds still.
BACKBONE_PREFIXES = ("stem_", "stage")


def is_backbone_layer(layer: layers.Layer) -> bool:
    return layer.name.startswith(BACKBONE_PREFIXES)


PREPROCESSING_LAYERS = ("image", "grayscale", "resize", "body_crop", "crop_resize", "scale", "tophat", "standardize")


def ensemble_model(members: Sequence[keras.Model], *, class_names: Sequence[str], image_size: int,
                   normalization: str = "group", standardize: bool = False, pooling: str = "avg",
                   width: int = 32, tophat: float = 0.0, body_crop: bool = False) -> keras.Model:
    """One flat model averaging the probabilities of several trained small ResNets.

    The members share the preprocessing; their last feature maps are concatenated into one
    layer so Grad-CAM explains the averaged decision, and the pooled features of all members
    feed the out-of-scope distance. Each member's head reads its own share of the pool.
    """
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    inputs = keras.Input(shape=(None, None, None), name="image")
    x = _preprocess(inputs, image_size, standardize=False, body_crop=body_crop)
    if tophat:
        x = WhiteTopHat(tophat_size(tophat, image_size), name="tophat")(x)
    if standardize:
        x = Standardize(name="standardize")(x)
    maps = [_resnet_small(x, 0.0, normalization, width, prefix=f"m{i}_") for i in range(len(members))]
    stacked = layers.Concatenate(axis=-1, name="ensemble_features")(maps)
    channels = int(maps[0].shape[-1])  # of each member's last feature map
    if pooling == "avg":
        pooled = layers.GlobalAveragePooling2D(name="pool")(stacked)
        shares = [ChannelSlice(i * channels, (i + 1) * channels, name=f"m{i}_features")(pooled) for i in range(len(members))]
    else:
        # Pool is [all averages, all maxima]; each member's head reads its own [average, maximum], as it trained.
        pooled = _pool(stacked, pooling)
        total = channels * len(members)
        shares = [layers.Concatenate(name=f"m{i}_features")([
            ChannelSlice(i * channels, (i + 1) * channels, name=f"m{i}_features_avg")(pooled),
            ChannelSlice(total + i * channels, total + (i + 1) * channels, name=f"m{i}_features_max")(pooled)])
            for i in range(len(members))]
    heads = [layers.Dense(len(class_names), activation="softmax", name=f"m{i}_probabilities")(share)
             for i, share in enumerate(shares)]
    outputs = layers.Average(name="probabilities")(heads)
    model = keras.Model(inputs, outputs, name="kidney_resnet_small_ensemble")
    for i, member in enumerate(members):
        for layer in member.layers:
            if layer.weights and layer.name not in PREPROCESSING_LAYERS:
                model.get_layer(f"m{i}_{layer.name}").set_weights(layer.get_weights())
    return model


def inference_model(model: keras.Model, *, temperature: float = 1.0, offsets: Sequence[float] | None = None,
                    class_means=None, precision=None) -> keras.Model:
    """The shipped form: calibrated probabilities and, when statistics are given, an out-of-scope distance."""
    calibrated = TemperatureScaling(temperature, offsets, name="calibrated")(model.output)
    if class_means is None:
        return keras.Model(model.input, calibrated, name=model.name)
    pooled = model.get_layer("pool").output
    distance_layer = MahalanobisDistance(class_means.shape[0], class_means.shape[1], name="ood_distance")
    distance = distance_layer(pooled)
    distance_layer.set_weights([class_means, precision])
    return keras.Model(model.input, [calibrated, distance], name=model.name)


def feature_model(model: keras.Model) -> keras.Model:
    """Probabilities and pooled features in one pass, for fitting calibration and out-of-scope statistics."""
    return keras.Model(model.input, [model.output, model.get_layer("pool").output])


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the last layer with a 4-D output before pooling; Grad-CAM reads it."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        if (shape is not None and len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)
                and layer.name not in PREPROCESSING_LAYERS and not layer.name.startswith("aug_")):
            return layer.name
    raise ValueError("model has no convolutional feature map")
