"""Self-supervised pretraining of the small ResNet (SimCLR: Chen et al., 2020).

No pretrained weights can be downloaded here, and 24 stone and tumour patients are few to learn
what a kidney looks like from. Contrastive pretraining learns features from every slice without its
label: two augmented views of one slice must map close together and away from the batch's other
slices. The saved encoder is a ``train.weights`` file for ``resnet_small``: the classifier starts
from its convolutions instead of from random ones.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mlcore.config import AugmentConfig, TrainConfig
from mlcore.data import ImageRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainResult:
    path: Path
    losses: tuple[float, ...]  # mean contrastive loss per epoch
    slices: int
    seconds: float


def contrastive_augment(augment: AugmentConfig) -> AugmentConfig:
    """The views' augmentation: the recipe's geometry, stronger intensity changes, no mixup.

    Contrast and brightness differ most between scanners; without strong changes of them the
    easiest way to match two views is the slice's grey levels, which say nothing about a kidney.
    """
    return replace(augment, enabled=True, contrast=max(augment.contrast, 0.4),
                   brightness=max(augment.brightness, 0.25), mixup_alpha=0.0)


def encoder_model(config: TrainConfig, *, seed: int):
    """Uint8 slices in, pooled features out: the configured classifier without its head, with the
    views' (stronger) augmentation, which acts only when called with ``training=True``."""
    import keras

    from mlcore.model import model_for

    if config.architecture != "resnet_small":
        raise ValueError("pretraining is for resnet_small; keras.applications backbones take their own weights file")
    views = replace(config, augment=contrastive_augment(config.augment), weights=None)
    classifier = model_for(views, class_names=("unused",), seed=seed)
    return keras.Model(classifier.input, classifier.get_layer("pool").output, name="kidney_resnet_small_encoder")


def nt_xent(first, second, temperature: float):
    """SimCLR's loss: each view must pick its partner out of the 2N - 1 other views of the batch."""
    import tensorflow as tf

    z = tf.math.l2_normalize(tf.concat([first, second], axis=0), axis=1)
    n = tf.shape(first)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits -= tf.eye(2 * n) * 1e9  # a view is not its own partner
    partners = tf.concat([tf.range(n, 2 * n), tf.range(0, n)], axis=0)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=partners, logits=logits))


def pretrain(
    *,
    records: Sequence[ImageRecord],
    config: TrainConfig,
    out: Path,
    epochs: int,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    temperature: float = 0.2,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> PretrainResult:
    """Train the encoder contrastively on ``records`` (labels unused) and save it to ``out``.

    Test records are refused: a model judged on them must not have seen them, labelled or not.
    """
    import keras
    import tensorflow as tf

    from mlcore.train import dataset

    if any(r.split == "test" for r in records):
        raise ValueError("pretraining takes no test records: the test series must stay unseen")
    if len(records) < 2 * batch_size:
        raise ValueError(f"{len(records)} slices are too few for batches of {batch_size}; lower --batch-size")
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    started = time.monotonic()
    seed = config.seed
    encoder = encoder_model(config, seed=seed)
    channels = int(encoder.output.shape[-1])
    head = keras.Sequential([keras.Input((channels,)), keras.layers.Dense(channels, activation="relu"),
                             keras.layers.Dense(64)], name="projection")
    class_names = sorted({r.label for r in records})
    # drop_remainder: a last, small batch would make the task easier and the loss jump.
    ds, _ = dataset(records, class_names, batch_size, shuffle=True, seed=seed)
    ds = ds.unbatch().batch(batch_size, drop_remainder=True)
    steps = len(records) // batch_size
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps, alpha=0.05)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-4)
    variables = encoder.trainable_variables + head.trainable_variables

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            first = head(encoder(images, training=True), training=True)
            second = head(encoder(images, training=True), training=True)
            loss = nt_xent(first, second, temperature)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses: list[float] = []
    for epoch in range(1, epochs + 1):
        total = [float(step(images)) for images, _ in ds]
        losses.append(float(np.mean(total)))
        log.info("pretrain epoch %d/%d: contrastive loss %.4f (%.0f s)", epoch, epochs, losses[-1],
                 time.monotonic() - started)
        if on_epoch_end is not None:
            on_epoch_end(epoch, losses[-1])
    out.parent.mkdir(parents=True, exist_ok=True)
    encoder.save(out)
    return PretrainResult(path=out, losses=tuple(losses), slices=len(records), seconds=time.monotonic() - started)


def load_backbone(model, path: Path) -> int:
    """Copy a pretrained encoder's backbone weights into ``model`` by layer name; returns the layers copied.

    Every backbone layer of ``model`` must be found with the same shapes: a file of another width or
    normalization is refused, not half loaded.
    """
    import keras

    from mlcore.model import is_backbone_layer

    try:
        encoder = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises several types for a file that is not a model
        raise ValueError(f"{path} is not a pretrained encoder Keras can read: {exc}") from exc
    copied = 0
    for layer in model.layers:
        if not layer.weights or not is_backbone_layer(layer):
            continue
        try:
            source = encoder.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"{path} has no layer {layer.name!r}: not an encoder of this architecture") from None
        weights = source.get_weights()
        shapes = [w.shape for w in weights], [tuple(v.shape) for v in layer.weights]
        if shapes[0] != shapes[1]:
            raise ValueError(f"{path} does not fit: layer {layer.name!r} has shapes {shapes[0]}, the model {shapes[1]} "
                             "(another width or normalization?)")
        layer.set_weights(weights)
        copied += 1
    if not copied:
        raise ValueError(f"{path} has no backbone layers to copy")
    return copied
