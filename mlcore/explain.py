"""Grad-CAM heat maps: where in the slice the model looked for a class (Selvaraju et al., 2017).

The map is the last convolutional block's activations weighted by the gradient of the
class's log-probability, so it stays informative even when the probability saturates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from mlcore.model import last_conv_layer_name


@dataclass(frozen=True)
class GradCam:
    class_name: str
    heatmap: np.ndarray  # float32 in [0, 1], the input image's height and width

    def overlay_rgba(self) -> np.ndarray:
        """A colour map of the heat with transparency rising with heat, to lay over the slice."""
        rgba = np.zeros((*self.heatmap.shape, 4), dtype=np.uint8)
        rgba[..., :3] = colormap(self.heatmap)
        rgba[..., 3] = (np.clip(self.heatmap * 1.4, 0, 1) * 200).astype(np.uint8)
        return rgba

    def blend(self, image: np.ndarray, opacity: float = 0.5) -> np.ndarray:
        """The slice in grey with the heat map on top, as RGB (for reports)."""
        grey = image.mean(axis=-1) if image.ndim == 3 else image
        base = np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
        rgba = self.overlay_rgba().astype(np.float32)
        alpha = rgba[..., 3:4] / 255.0 * opacity
        return (base * (1 - alpha) + rgba[..., :3] * alpha).clip(0, 255).astype(np.uint8)


def colormap(values: np.ndarray) -> np.ndarray:
    """A 'jet'-like blue → green → yellow → red ramp without a plotting library."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    red = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([red, green, blue], axis=-1) * 255).astype(np.uint8)


class Explainer:
    """Builds the gradient graph once per model and reuses it for every image."""

    def __init__(self, model: Any, class_names: tuple[str, ...]) -> None:
        import keras
        import tensorflow as tf

        self.class_names = class_names
        layer = model.get_layer(last_conv_layer_name(model))
        probabilities = model.outputs[0]
        self._model = keras.Model(model.inputs, [layer.output, probabilities])
        # A model that zooms onto the body sees a box of the slice: the map must be put back over that box.
        self._crop = model.get_layer("body_crop") if "body_crop" in {item.name for item in model.layers} else None
        self._resized = keras.Model(model.inputs, model.get_layer("resize").output) if self._crop else None

        @tf.function(reduce_retracing=True)
        def cam(images, class_index):
            with tf.GradientTape() as tape:
                features, probs = self._model(images, training=False)
                target = tf.math.log(tf.gather(probs, class_index, axis=1) + 1e-7)
            grads = tape.gradient(target, features)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            return tf.nn.relu(tf.reduce_sum(features * weights, axis=-1)), probs

        self._cam = cam

    def explain(self, image: np.ndarray, class_name: str | None = None) -> GradCam:
        """Heat map for ``class_name``, or for the predicted class when none is given."""
        import tensorflow as tf

        image = image[..., None] if image.ndim == 2 else image
        batch = tf.convert_to_tensor(image[None])
        if class_name is None:
            _, probs = self._model(batch, training=False)
            index = int(np.argmax(np.asarray(probs)[0]))
        else:
            if class_name not in self.class_names:
                raise ValueError(f"unknown class {class_name!r}; the model knows {self.class_names}")
            index = self.class_names.index(class_name)
        raw, _ = self._cam(batch, tf.constant(index))
        heat = np.asarray(raw)[0].astype(np.float32)
        peak = float(heat.max())
        heat = heat / peak if peak > 0 else heat
        if self._crop is not None:
            heat = self._uncrop(batch, heat)
        resized = Image.fromarray(heat).resize((image.shape[1], image.shape[0]), Image.BILINEAR)
        return GradCam(class_name=self.class_names[index], heatmap=np.clip(np.asarray(resized), 0.0, 1.0))

    def _uncrop(self, batch: Any, heat: np.ndarray) -> np.ndarray:
        """The map over the body box, placed back on the square the model resized the slice to (zero outside)."""
        resized = self._resized(batch, training=False)
        side = int(resized.shape[1])
        scale, x0, y0 = (float(np.asarray(value)[0]) for value in self._crop.boxes(resized))
        square = Image.fromarray(heat).resize((side, side), Image.BILINEAR)
        # PIL's affine maps each output pixel to the map's pixel: the inverse of the crop's transform.
        inverse = (1.0 / scale, 0.0, -x0 / scale, 0.0, 1.0 / scale, -y0 / scale)
        return np.asarray(square.transform((side, side), Image.AFFINE, inverse, Image.BILINEAR, fillcolor=0.0))
