"""Fitting a classifier on the train split, choosing the epoch by validation macro-F1.

The returned model is the shipped form: no augmentation layers, no optimizer state,
probabilities calibrated by a temperature fitted on validation, and a distance to the
training classes for the out-of-scope flag.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from mlcore.config import TrainConfig
from mlcore.data import ImageRecord
from mlcore.evaluate import fit_temperature, score

log = logging.getLogger(__name__)

# Images of other sizes are brought to this size only so a batch can be stacked;
# the model's own resize layer still does the real preprocessing.
LOAD_SIZE = 256


class TrainingCancelled(Exception):
    """Raised when ``should_stop`` asked training to stop."""


@dataclass(frozen=True)
class EpochProgress:
    epoch: int
    epochs: int
    loss: float
    val_loss: float
    val_accuracy: float
    val_macro_f1: float
    seconds: float
    phase: str = "train"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitResult:
    model: Any  # keras.Model in its shipped form
    history: list[EpochProgress] = field(default_factory=list)
    best_epoch: int = 0
    temperature: float = 1.0
    out_of_scope_threshold: float = float("inf")
    seconds: float = 0.0


def dataset(records: Sequence[ImageRecord], class_names: Sequence[str], batch_size: int,
            shuffle: bool = False, seed: int = 0):
    """A tf.data pipeline: decode, cache, (shuffle), batch, prefetch. Returns it with the label array."""
    import tensorflow as tf

    index = {name: i for i, name in enumerate(class_names)}
    paths = [str(r.path) for r in records]
    labels = np.array([index[r.label] for r in records], dtype=np.int32)

    def decode(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=1, expand_animations=False)
        image = tf.cond(
            tf.reduce_all(tf.equal(tf.shape(image)[:2], [LOAD_SIZE, LOAD_SIZE])),
            lambda: image,
            lambda: tf.cast(tf.image.resize(image, [LOAD_SIZE, LOAD_SIZE], antialias=True), tf.uint8),
        )
        image.set_shape([LOAD_SIZE, LOAD_SIZE, 1])
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), labels


def _mixup(ds, alpha: float, seed: int):
    """Blend each batch with a shuffled copy of itself, images and one-hot labels alike."""
    import tensorflow as tf

    def mix(images, labels):
        images = tf.cast(images, tf.float32)
        batch = tf.shape(images)[0]
        gamma_a = tf.random.gamma([batch], alpha, seed=seed)
        gamma_b = tf.random.gamma([batch], alpha, seed=seed + 1)
        lam = gamma_a / (gamma_a + gamma_b)
        lam = tf.maximum(lam, 1.0 - lam)  # the first slice stays dominant
        order = tf.random.shuffle(tf.range(batch), seed=seed)
        lam_images = tf.reshape(lam, [-1, 1, 1, 1])
        lam_labels = tf.reshape(lam, [-1, 1])
        mixed = images * lam_images + tf.gather(images, order) * (1.0 - lam_images)
        return mixed, labels * lam_labels + tf.gather(labels, order) * (1.0 - lam_labels)

    return ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def class_weights(labels: np.ndarray, n: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=n).astype(float)
    counts[counts == 0] = 1.0
    return {i: float(len(labels) / (n * c)) for i, c in enumerate(counts)}


def _copy_weights(source, target) -> None:
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def _feature_statistics(features: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    means = np.stack([features[labels == c].mean(axis=0) if (labels == c).any() else features.mean(axis=0)
                      for c in range(n)])
    centred = features - means[labels]
    covariance = centred.T @ centred / max(1, len(features) - 1)
    # Shrinkage keeps the inverse stable with few slices per feature.
    covariance += np.eye(covariance.shape[0]) * (1e-3 + 0.05 * np.trace(covariance) / covariance.shape[0])
    return means.astype(np.float32), np.linalg.inv(covariance).astype(np.float32)


def fit(
    *,
    base_model,
    records: Sequence[ImageRecord],
    class_names: Sequence[str],
    config: TrainConfig,
    out_of_scope_quantile: float = 0.995,
    on_epoch_end: Callable[[EpochProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Train ``base_model`` (uncompiled, with augmentation) and return its shipped form."""
    import keras

    from mlcore.model import build_model

    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    train_records = [r for r in records if r.split == "train"]
    val_records = [r for r in records if r.split == "val"]
    if not train_records or not val_records:
        raise ValueError("training needs both a train and a val split; the data has too few series")
    train_ds, train_labels = dataset(train_records, class_names, config.batch_size, True, config.seed)
    val_ds, val_labels = dataset(val_records, class_names, config.batch_size)
    n = len(class_names)
    one_hot = lambda x, y: (x, keras.ops.one_hot(y, n))  # noqa: E731
    train_input = train_ds.map(one_hot)
    if config.augment.enabled and config.augment.mixup_alpha > 0:
        train_input = _mixup(train_input, config.augment.mixup_alpha, config.seed)
    weights = class_weights(train_labels, n) if config.class_weighting else None

    model = base_model
    history: list[EpochProgress] = []
    best: dict[str, Any] = {"f1": -1.0, "weights": None, "epoch": 0}
    cancelled = {"flag": False}

    class Track(keras.callbacks.Callback):
        def __init__(self, phase: str, epochs: int, offset: int) -> None:
            super().__init__()
            self.phase, self.epochs, self.offset = phase, epochs, offset
            self.epoch_started = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            val = score(val_labels, self.model.predict(val_ds, verbose=0), class_names)
            number = self.offset + epoch + 1
            progress = EpochProgress(epoch=number, epochs=self.epochs, loss=float(logs.get("loss", np.nan)),
                                     val_loss=float(logs.get("val_loss", np.nan)), val_accuracy=val.accuracy,
                                     val_macro_f1=val.macro_f1, seconds=time.monotonic() - self.epoch_started,
                                     phase=self.phase)
            history.append(progress)
            log.info("%s epoch %d/%d loss %.4f val_loss %.4f val_acc %.4f val_macro_f1 %.4f (%.0f s)", self.phase,
                     number, self.epochs, progress.loss, progress.val_loss, val.accuracy, val.macro_f1, progress.seconds)
            if val.macro_f1 > best["f1"]:
                best.update(f1=val.macro_f1, weights=self.model.get_weights(), epoch=number)
            elif number - best["epoch"] >= config.early_stopping_patience:
                log.info("early stop: no better validation macro-F1 since epoch %d", best["epoch"])
                self.model.stop_training = True
            if on_epoch_end is not None:
                on_epoch_end(progress)
            if should_stop is not None and should_stop():
                cancelled["flag"] = True
                self.model.stop_training = True

    phases = [("train", config.epochs, config.learning_rate)]
    if config.weights and config.fine_tune_epochs:
        phases.append(("fine_tune", config.fine_tune_epochs, config.fine_tune_learning_rate))
    total_epochs = sum(p[1] for p in phases)
    offset = 0
    for phase, epochs, learning_rate in phases:
        backbone_frozen = phase == "train" and bool(config.weights) and config.fine_tune_epochs > 0
        for layer in model.layers:
            if isinstance(layer, keras.Model):  # a pretrained application backbone
                layer.trainable = not backbone_frozen
        steps = max(1, int(np.ceil(len(train_labels) / config.batch_size))) * epochs
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.02)
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        )
        model.fit(train_input, validation_data=val_ds.map(one_hot), epochs=epochs,
                  class_weight=weights, callbacks=[Track(phase, total_epochs, offset)], verbose=0)
        offset += epochs
        if cancelled["flag"]:
            raise TrainingCancelled(f"stopped on request after epoch {len(history)}")
    if best["weights"] is not None:
        model.set_weights(best["weights"])

    # The shipped model carries no augmentation layers and no optimizer state: smaller, and deterministic.
    plain = build_model(class_names=class_names, image_size=config.image_size, architecture=config.architecture,
                        augment=False, seed=config.seed, weight_decay=config.weight_decay, dropout=config.dropout,
                        normalization=config.normalization, standardize=config.standardize)
    _copy_weights(model, plain)
    shipped, temperature, threshold = calibrate(plain, records, class_names, config.batch_size, out_of_scope_quantile)
    return FitResult(model=shipped, history=history, best_epoch=best["epoch"], temperature=temperature,
                     out_of_scope_threshold=threshold, seconds=time.monotonic() - started)


def calibrate(plain, records: Sequence[ImageRecord], class_names: Sequence[str], batch_size: int = 32,
              out_of_scope_quantile: float = 0.995):
    """Wrap a trained model with a validation-fitted temperature and training-feature statistics.

    Returns the shipped model, the temperature and the out-of-scope distance threshold (the
    given quantile of validation distances, so that share of real slices stays in scope).
    """
    from mlcore.model import feature_model, inference_model

    n = len(class_names)
    train_ds, train_labels = dataset([r for r in records if r.split == "train"], class_names, batch_size)
    val_ds, val_labels = dataset([r for r in records if r.split == "val"], class_names, batch_size)
    features_of = feature_model(plain)
    val_probabilities, _ = (np.asarray(a) for a in features_of.predict(val_ds, verbose=0))
    temperature = fit_temperature(val_probabilities, val_labels)
    _, train_features = (np.asarray(a) for a in features_of.predict(train_ds, verbose=0))
    means, precision = _feature_statistics(train_features, train_labels, n)
    shipped = inference_model(plain, temperature=temperature, class_means=means, precision=precision)
    _, val_distance = (np.asarray(a) for a in shipped.predict(val_ds, verbose=0))
    threshold = float(np.quantile(val_distance[:, 0], out_of_scope_quantile))
    log.info("temperature %.3f, out-of-scope distance threshold %.2f", temperature, threshold)
    return shipped, temperature, threshold
