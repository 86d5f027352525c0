"""Model architectures.

Greyscale conversion, resizing, scaling and augmentation are layers of the model, so
the saved file takes any image size, grey or RGB, as uint8 pixels, and inference
can never drift from what training saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
from keras import layers

from mlcore.config import ARCHITECTURES, POOLINGS, AugmentConfig, TrainConfig

# Few steps per epoch on a small data set: slow moving averages would lag the weights
# and make inference-mode outputs disagree with training-mode ones.
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="mlcore")
class Grayscale(layers.Layer):
    """Average the channels: grey stays grey, RGB renderings of a CT slice become grey."""

    def call(self, inputs):
        inputs = keras.ops.cast(inputs, "float32")
        return keras.ops.mean(inputs, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)


@keras.saving.register_keras_serializable(package="mlcore")
class WhiteTopHat(layers.Layer):
    """The image beside its white top-hat: what a grey opening with a ``size``-pixel square removes.

    Only bright structures narrower than the square survive the subtraction: a calculus a few pixels
    wide does, a vertebra or a contrast-filled organ mostly does not.
    """

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, inputs):
        eroded = -keras.ops.max_pool(-inputs, self.size, strides=1, padding="same")
        opened = keras.ops.max_pool(eroded, self.size, strides=1, padding="same")
        return keras.ops.concatenate([inputs, inputs - opened], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="mlcore")
class BodyCrop(layers.Layer):
    """Zoom a square grey slice (0–255) onto the patient's body, keeping the aspect.

    Scanners frame the abdomen anywhere from snugly to with half the field of view empty, so the
    same calculus spans twice as many pixels on one patient's slices as on another's. Cropping to
    the body gives every slice one scale. The body is what stays brighter than ``threshold`` after
    an erosion ``erode`` pixels wide, which removes the thin couch lines under it; the box is made
    square, widened by ``margin`` on each side and never narrower than ``min_side`` of the image.
    A slice with no such region (blank, all dark) is left as it is.
    """

    def __init__(self, threshold: float = 30.0, erode: int = 7, margin: float = 0.04, min_side: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        self.erode = int(erode)
        self.margin = float(margin)
        self.min_side = float(min_side)

    def boxes(self, x):
        """Per slice (scale, x0, y0): output pixel (u, v) reads input pixel (scale·u + x0, scale·v + y0)."""
        ops = keras.ops
        height = ops.cast(ops.shape(x)[1], "float32")
        width = ops.cast(ops.shape(x)[2], "float32")
        eroded = -ops.max_pool(-x, self.erode, strides=1, padding="same")
        mask = ops.cast(eroded[..., 0] > self.threshold, "float32")
        rows, cols = ops.max(mask, axis=2), ops.max(mask, axis=1)
        found = ops.max(rows, axis=1) > 0

        def extent(profile, n):
            first = ops.cast(ops.argmax(profile, axis=1), "float32")
            return first, n - 1.0 - ops.cast(ops.argmax(ops.flip(profile, axis=1), axis=1), "float32")

        top, bottom = extent(rows, height)
        left, right = extent(cols, width)
        # The erosion ate this much of the body's edge on every side.
        side = ops.maximum(bottom - top, right - left) + 1.0 + 2.0 * (self.erode // 2)
        side = side * (1.0 + 2.0 * self.margin)
        side = ops.where(found, ops.clip(side, self.min_side * height, height), height)
        cy = ops.where(found, (top + bottom) / 2.0, (height - 1.0) / 2.0)
        cx = ops.where(found, (left + right) / 2.0, (width - 1.0) / 2.0)
        scale = side / height
        return scale, cx - scale * (width - 1.0) / 2.0, cy - scale * (height - 1.0) / 2.0

    def call(self, inputs):
        scale, x0, y0 = self.boxes(inputs)
        zeros = keras.ops.zeros_like(scale)
        transform = keras.ops.stack([scale, zeros, x0, zeros, scale, y0, zeros, zeros], axis=1)
        return keras.ops.image.affine_transform(inputs, transform, interpolation="bilinear", fill_mode="constant",
                                                fill_value=0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "erode": self.erode, "margin": self.margin,
                "min_side": self.min_side}


def tophat_size(fraction: float, image_size: int) -> int:
    """An odd square side in pixels for a share of the image side (3 at least), 0 when off."""
    if not fraction:
        return 0
    return max(3, int(round(fraction * image_size)) // 2 * 2 + 1)


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
                  blocks: Sequence[int] = (1, 2, 2, 1), prefix: str = ""):
    """A ResNet-18-style network, narrower, for a few thousand greyscale slices on a CPU."""
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
    return x


@keras.saving.register_keras_serializable(package="mlcore")
class Standardize(layers.Layer):
    """Zero mean, unit variance per image: scanners and windowing differ in brightness and contrast."""

    def call(self, inputs):
        mean = keras.ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.std(inputs, axis=(1, 2, 3), keepdims=True)
        return (inputs - mean) / (std + 1e-3)


@keras.saving.register_keras_serializable(package="mlcore")
class TemperatureScaling(layers.Layer):
    """Shift log-probabilities by per-class offsets, then divide by a temperature (Guo et al., 2017).

    Both are fitted on validation data: the offsets move the decision (argmax), the temperature
    only how confident the probabilities are. Models saved before offsets existed load with none.
    """

    def __init__(self, temperature: float = 1.0, offsets: Sequence[float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)
        self.offsets = [float(v) for v in offsets] if offsets is not None else None

    def call(self, probabilities):
        logits = keras.ops.log(keras.ops.clip(probabilities, 1e-7, 1.0))
        if self.offsets is not None:
            logits = logits + keras.ops.convert_to_tensor(self.offsets, dtype=logits.dtype)
        return keras.ops.softmax(logits / self.temperature, axis=-1)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "offsets": self.offsets}


@keras.saving.register_keras_serializable(package="mlcore")
class MahalanobisDistance(layers.Layer):
    """Distance of pooled features to the nearest class mean under a shared covariance.

    Far from every class means unlike any training slice: the basis of the out-of-scope flag
    (Lee et al., 2018). The statistics are weights, so they travel inside the model file.
    """

    def __init__(self, classes: int, features: int, **kwargs):
        super().__init__(**kwargs)
        self.classes, self.features = int(classes), int(features)
        self.means = self.add_weight(shape=(self.classes, self.features), initializer="zeros", trainable=False, name="means")
        self.precision = self.add_weight(shape=(self.features, self.features), initializer="identity", trainable=False,
                                         name="precision")

    def call(self, features):
        diff = keras.ops.expand_dims(features, 1) - keras.ops.expand_dims(self.means, 0)
        projected = keras.ops.einsum("bcd,de->bce", diff, self.precision)
        distances = keras.ops.sum(projected * diff, axis=-1)
        return keras.ops.sqrt(keras.ops.maximum(keras.ops.min(distances, axis=-1, keepdims=True), 0.0))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "features": self.features}


@keras.saving.register_keras_serializable(package="mlcore")
class ChannelSlice(layers.Layer):
    """Channels ``start:stop`` of the last axis: one ensemble member's share of the pooled features."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, inputs):
        return inputs[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


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
        features = _resnet_small(x, weight_decay, normalization, width)
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
