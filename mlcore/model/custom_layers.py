"""The model's own layers: preprocessing that travels inside the saved file, calibration and the
out-of-scope distance. Registered with Keras, so a saved model loads wherever ``mlcore.model`` is imported.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers


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


@keras.saving.register_keras_serializable(package="mlcore")
class MixStyle(layers.Layer):
    """In training, with this probability per batch, give each slice's feature maps the channel statistics
    (mean and spread over the image) of a blend of itself and another slice of the batch (MixStyle, Zhou et
    al., 2021). Those statistics carry a scan's "style": its scanner, windowing and the patient's overall look.
    Blending them across patients asks the next layers to read the content instead. Identity at inference."""

    def __init__(self, probability: float = 0.5, alpha: float = 0.1, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.probability, self.alpha, self.seed = probability, alpha, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or not self.probability:
            return inputs
        ops = keras.ops
        # The statistics are mixed, not learned through: gradients flow through the normalised content only.
        mean = ops.stop_gradient(ops.mean(inputs, axis=(1, 2), keepdims=True))
        spread = ops.stop_gradient(ops.sqrt(ops.var(inputs, axis=(1, 2), keepdims=True) + 1e-6))
        batch = ops.shape(inputs)[0]
        weight = keras.random.beta((batch, 1, 1, 1), self.alpha, self.alpha, seed=self.generator)
        other = keras.random.shuffle(ops.arange(batch), seed=self.generator)
        mixed_mean = weight * mean + (1.0 - weight) * ops.take(mean, other, axis=0)
        mixed_spread = weight * spread + (1.0 - weight) * ops.take(spread, other, axis=0)
        mixed = (inputs - mean) / spread * mixed_spread + mixed_mean
        return ops.where(keras.random.uniform((), seed=self.generator) < self.probability, mixed, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "probability": self.probability, "alpha": self.alpha, "seed": self.seed}


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
