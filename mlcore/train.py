"""Fitting a classifier on the train split, choosing the epoch by validation macro-F1.

The returned model is the shipped form: no augmentation layers, no optimizer state,
probabilities calibrated by a temperature fitted on validation, and a distance to the
training classes for the out-of-scope flag. With ``refit``, the shipped networks are trained
again on training and validation slices together for the epochs validation chose.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from mlcore.calibration import calibrate, calibrate_like
from mlcore.config import TrainConfig
from mlcore.data import ImageRecord
from mlcore.evaluate import score

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
    val_loss: float | None  # None for a refit epoch: validation slices are then training slices
    val_accuracy: float | None
    val_macro_f1: float | None
    seconds: float
    phase: str = "train"
    member: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitResult:
    model: Any  # keras.Model in its shipped form
    history: list[EpochProgress] = field(default_factory=list)
    temperature: float = 1.0
    class_offsets: tuple[float, ...] = ()  # added to the log-probabilities before the temperature; () for none
    out_of_scope_threshold: float = float("inf")
    seconds: float = 0.0
    best_epochs: tuple[int, ...] = ()  # one per ensemble member
    refit: bool = False  # the shipped networks were trained again on training and validation slices

    @property
    def best_epoch(self) -> int:
        return self.best_epochs[0] if self.best_epochs else 0


def dataset(records: Sequence[ImageRecord], class_names: Sequence[str], batch_size: int,
            shuffle: bool = False, seed: int = 0, weights: np.ndarray | None = None, balanced: bool = False):
    """A tf.data pipeline: decode, cache, (shuffle), batch, prefetch. Returns it with the label array.

    With ``weights`` (one per record) the batches carry them as Keras sample weights. ``balanced``
    draws each class equally often instead of in proportion to its slices.
    """
    import tensorflow as tf

    index = {name: i for i, name in enumerate(class_names)}
    paths = [str(r.path) for r in records]
    labels = np.array([index[r.label] for r in records], dtype=np.int32)

    def decode(path, label, *weight):
        image = tf.io.decode_image(tf.io.read_file(path), channels=1, expand_animations=False)
        image = tf.cond(
            tf.reduce_all(tf.equal(tf.shape(image)[:2], [LOAD_SIZE, LOAD_SIZE])),
            lambda: image,
            lambda: tf.cast(tf.image.resize(image, [LOAD_SIZE, LOAD_SIZE], antialias=True), tf.uint8),
        )
        image.set_shape([LOAD_SIZE, LOAD_SIZE, 1])
        return (image, label, *weight)

    def decoded(rows: np.ndarray):
        columns = (np.array(paths)[rows], labels[rows])
        if weights is not None:
            columns += (np.asarray(weights, dtype=np.float32)[rows],)
        return tf.data.Dataset.from_tensor_slices(columns).map(decode, num_parallel_calls=tf.data.AUTOTUNE).cache()

    if balanced:
        # One endless, reshuffled stream per class, taken from in turn: every batch holds as many slices
        # of each class, and the scarce classes are seen again under new augmentation rather than weighed
        # up. An epoch is as many batches as the slices fill; each epoch takes a fresh share of the large
        # classes.
        streams = [decoded(np.flatnonzero(labels == c)).shuffle(int((labels == c).sum()), seed=seed + c,
                                                                reshuffle_each_iteration=True).repeat()
                   for c in sorted(set(labels.tolist()))]
        turns = tf.data.Dataset.range(len(streams)).repeat()
        ds = tf.data.Dataset.choose_from_datasets(streams, turns)
        batches = int(np.ceil(len(paths) / batch_size))
        ds = ds.batch(batch_size).take(batches)
        if shuffle:  # the classes' turns would otherwise sit in the same places of every batch (mixup pairs them)
            ds = ds.unbatch().shuffle(batch_size * 4, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
        # Full batches in, full batches out: said, so that Keras knows an epoch's length before it ends.
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
        return ds.prefetch(tf.data.AUTOTUNE), labels
    ds = decoded(np.arange(len(paths)))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), labels


def _mixup(ds, alpha: float, seed: int):
    """Blend each batch with a shuffled copy of itself, images and one-hot labels alike."""
    import tensorflow as tf

    def mix(images, labels, weights):
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
        # The first slice dominates, so its weight stays, as Keras' class weights read the dominant label.
        return mixed, labels * lam_labels + tf.gather(labels, order) * (1.0 - lam_labels), weights

    return ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def sample_weights(records: Sequence[ImageRecord], class_names: Sequence[str], *, class_weighting: bool,
                   series_weighting: float) -> np.ndarray:
    """One training weight per record, averaging 1.

    Each class weighs as much in all as the others (``class_weighting``) or as its slices; within
    a class a slice weighs (slices in its series) ** -series_weighting, so 1 makes every patient
    count the same however many slices were exported.
    """
    labels = np.array([class_names.index(r.label) for r in records])
    sizes = Counter((r.label, r.series) for r in records)
    raw = np.array([sizes[(r.label, r.series)] ** -series_weighting for r in records], dtype=np.float64)
    weights = np.zeros(len(records))
    present = [c for c in range(len(class_names)) if (labels == c).any()]
    for c in present:
        members = labels == c
        share = len(records) / len(present) if class_weighting else members.sum()
        weights[members] = raw[members] * share / raw[members].sum()
    return weights.astype(np.float32)


def _copy_weights(source, target) -> None:
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def _swap_ema(model) -> None:
    """Exchange the model's weights with the optimizer's moving averages, in place."""
    averages = model.optimizer._model_variables_moving_average
    for variable, average in zip(model.trainable_variables, averages):
        current = variable.numpy()
        variable.assign(average)
        average.assign(current)


def _log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))


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
    """Train ``base_model`` (uncompiled, with augmentation) and return its shipped form.

    With ``config.members`` > 1, further networks are built from the same configuration with
    the following seeds, trained the same way, and shipped as one averaging model.
    """
    import keras

    from mlcore.model import model_for

    started = time.monotonic()
    train_records = [r for r in records if r.split == "train"]
    val_records = [r for r in records if r.split == "val"]
    if not train_records or not val_records:
        raise ValueError("training needs both a train and a val split; the data has too few series")
    val_ds, val_labels = dataset(val_records, class_names, config.batch_size)
    history: list[EpochProgress] = []
    epochs_per_member = config.epochs + (config.fine_tune_epochs if config.weights else 0)
    # While the epochs are still to be chosen, a refit's share is counted at its most.
    planned = config.members * epochs_per_member * (2 if config.refit else 1)
    members, best_epochs = [], []
    for member in range(config.members):
        seed = config.seed + member
        keras.utils.set_random_seed(seed)
        model = base_model if member == 0 else model_for(config, class_names=class_names, seed=seed)
        best_epoch = fit_network(
            model, train_records=train_records, val_ds=val_ds, val_labels=val_labels, class_names=class_names,
            config=config, seed=seed, member=member, history=history,
            epoch_offset=member * epochs_per_member, total_epochs=planned,
            on_epoch_end=on_epoch_end, should_stop=should_stop)
        members.append(_shipped_network(model, config, class_names, seed))
        best_epochs.append(best_epoch)
    shipped, calibration = calibrate(_combined(members, config, class_names), records, class_names,
                                     config.batch_size, out_of_scope_quantile, class_offsets=config.class_offsets)
    if config.refit:
        fit_records = train_records + val_records
        done = history[-1].epoch if history else 0
        total = done + sum(best_epochs)
        members = []
        for member, epochs in enumerate(best_epochs):
            seed = config.seed + member
            keras.utils.set_random_seed(seed)
            model = model_for(config, class_names=class_names, seed=seed)
            fit_network(model, train_records=fit_records, val_ds=None, val_labels=None, class_names=class_names,
                        config=config, seed=seed, member=member, history=history, epochs=epochs,
                        epoch_offset=done + sum(best_epochs[:member]), total_epochs=total,
                        on_epoch_end=on_epoch_end, should_stop=should_stop)
            members.append(_shipped_network(model, config, class_names, seed))
        shipped, calibration = calibrate_like(_combined(members, config, class_names), fit_records, class_names,
                                              like=calibration, batch_size=config.batch_size,
                                              out_of_scope_quantile=out_of_scope_quantile)
    return FitResult(model=shipped, history=history, temperature=calibration.temperature,
                     class_offsets=calibration.class_offsets,
                     out_of_scope_threshold=calibration.out_of_scope_threshold, seconds=time.monotonic() - started,
                     best_epochs=tuple(best_epochs), refit=config.refit)


def _shipped_network(model, config: TrainConfig, class_names: Sequence[str], seed: int):
    """A trained network's weights in a model without augmentation layers or optimizer state:
    smaller, and deterministic."""
    from mlcore.model import model_for

    plain = model_for(config, class_names=class_names, seed=seed, trainable=False)
    _copy_weights(model, plain)
    return plain


def _combined(members: Sequence[Any], config: TrainConfig, class_names: Sequence[str]):
    from mlcore.model import ensemble_model

    return members[0] if len(members) == 1 else ensemble_model(
        members, class_names=class_names, image_size=config.image_size, normalization=config.normalization,
        standardize=config.standardize, pooling=config.pooling, width=config.width, tophat=config.tophat,
        body_crop=config.body_crop)


def fit_network(model, *, train_records: Sequence[ImageRecord], val_ds, val_labels: np.ndarray | None,
                class_names: Sequence[str], config: TrainConfig, seed: int, member: int,
                history: list[EpochProgress], epoch_offset: int, total_epochs: int,
                on_epoch_end: Callable[[EpochProgress], None] | None,
                should_stop: Callable[[], bool] | None,
                on_validation: Callable[[int, np.ndarray], None] | None = None,
                epochs: int | None = None) -> int:
    """Train one network in place, leave it at its best validation epoch, and return that epoch.

    ``on_validation`` receives each epoch's number and validation probabilities (cross-validation
    pools them across folds). With ``val_ds`` None (a refit) nothing is validated: the network
    trains for ``epochs`` (the configured phases, cut short there, each with its learning-rate
    schedule fitted to what is left of it) and keeps its last weights.
    """
    import keras

    from mlcore.model import is_backbone_layer

    n = len(class_names)
    refit = val_ds is None
    balanced = config.sampling == "balanced"
    # Balanced sampling already evens out the classes; the weights then only even out series within one.
    weights = sample_weights(train_records, list(class_names), class_weighting=config.class_weighting and not balanced,
                             series_weighting=config.series_weighting)
    train_ds, train_labels = dataset(train_records, class_names, config.batch_size, True, seed, weights, balanced)
    one_hot = lambda x, y, w: (x, keras.ops.one_hot(y, n), w)  # noqa: E731
    train_input = train_ds.map(one_hot)
    if config.augment.enabled and config.augment.mixup_alpha > 0:
        train_input = _mixup(train_input, config.augment.mixup_alpha, seed)
    best: dict[str, Any] = {"f1": -1.0, "weights": None, "epoch": 0}
    cancelled = {"flag": False}
    ema = config.ema_momentum > 0

    class Track(keras.callbacks.Callback):
        def __init__(self, phase: str, offset: int) -> None:
            super().__init__()
            self.phase, self.offset = phase, offset
            self.epoch_started = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            number = self.offset + epoch + 1
            loss = float(logs.get("loss", np.nan))
            if refit:
                progress = EpochProgress(epoch=epoch_offset + number, epochs=total_epochs, loss=loss, val_loss=None,
                                         val_accuracy=None, val_macro_f1=None,
                                         seconds=time.monotonic() - self.epoch_started, phase=self.phase,
                                         member=member + 1)
                log.info("member %d %s epoch %d/%d loss %.4f (%.0f s)", member + 1, self.phase, progress.epoch,
                         total_epochs, loss, progress.seconds)
                best["epoch"] = number
            else:
                progress = self.validate(number, loss)
            history.append(progress)
            if on_epoch_end is not None:
                on_epoch_end(progress)
            if should_stop is not None and should_stop():
                cancelled["flag"] = True
                self.model.stop_training = True

        def validate(self, number: int, loss: float) -> EpochProgress:
            if ema:
                _swap_ema(self.model)
            probabilities = np.asarray(self.model.predict(val_ds, verbose=0))
            val = score(val_labels, probabilities, class_names)
            if on_validation is not None:
                on_validation(number, probabilities)
            progress = EpochProgress(epoch=epoch_offset + number, epochs=total_epochs, loss=loss,
                                     val_loss=_log_loss(val_labels, probabilities), val_accuracy=val.accuracy,
                                     val_macro_f1=val.macro_f1, seconds=time.monotonic() - self.epoch_started,
                                     phase=self.phase, member=member + 1)
            log.info("member %d %s epoch %d/%d loss %.4f val_loss %.4f val_acc %.4f val_macro_f1 %.4f (%.0f s)",
                     member + 1, self.phase, progress.epoch, total_epochs, progress.loss, progress.val_loss,
                     val.accuracy, val.macro_f1, progress.seconds)
            improved = val.macro_f1 > best["f1"]
            if improved:
                best.update(f1=val.macro_f1, weights=self.model.get_weights(), epoch=number)
            if ema:
                _swap_ema(self.model)
            if not improved and number - best["epoch"] >= config.early_stopping_patience:
                log.info("early stop: no better validation macro-F1 since epoch %d", best["epoch"])
                self.model.stop_training = True
            return progress

    phases = [("train", config.epochs, config.learning_rate)]
    if config.weights and config.fine_tune_epochs:
        phases.append(("fine_tune", config.fine_tune_epochs, config.fine_tune_learning_rate))
    if epochs is not None:
        left, cut = epochs, []
        for phase, length, learning_rate in phases:
            if left > 0:
                cut.append((phase, min(length, left), learning_rate))
            left -= length
        phases = cut
    offset = 0
    for phase, length, learning_rate in phases:
        backbone_frozen = phase == "train" and bool(config.weights) and config.fine_tune_epochs > 0
        for layer in model.layers:
            # A pretrained application backbone, or a pretrained resnet_small's convolutions.
            if isinstance(layer, keras.Model) or is_backbone_layer(layer):
                layer.trainable = not backbone_frozen
        steps = max(1, int(np.ceil(len(train_labels) / config.batch_size))) * length
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.02)
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, use_ema=ema,
                                             ema_momentum=config.ema_momentum or 0.99),
            loss=_loss(config),
        )
        # Validation runs in the Track callback, once, on the weights that would be kept.
        model.fit(train_input, epochs=length, callbacks=[Track(f"refit_{phase}" if refit else phase, offset)],
                  verbose=0)
        offset += length
        if cancelled["flag"]:
            raise TrainingCancelled(f"stopped on request after epoch {len(history)}")
    if refit and ema:
        _swap_ema(model)  # the moving average is what a validated network would have kept
    elif best["weights"] is not None:
        model.set_weights(best["weights"])
    return best["epoch"]


def _loss(config: TrainConfig):
    import keras

    if config.focal_gamma:
        # alpha 1: the classes are already balanced by the sample weights.
        return keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=config.focal_gamma,
                                                        label_smoothing=config.label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def plain_model(shipped):
    """The trained network(s) of a shipped model, without calibration and out-of-scope layers."""
    import keras

    return keras.Model(shipped.input, shipped.get_layer("calibrated").input, name=shipped.name)
