"""Training a classifier on a folder of class subfolders, split by series."""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mlcore.card import ModelCard, write_card
from mlcore.config import TrainConfig
from mlcore.data import ImageRecord, build_manifest, class_names_of
from mlcore.evaluate import Scores, score

log = logging.getLogger(__name__)

# Images of other sizes are brought to this size only so a batch can be stacked;
# the model's own resize layer still does the real preprocessing.
LOAD_SIZE = 256


@dataclass(frozen=True)
class EpochProgress:
    epoch: int
    epochs: int
    loss: float
    val_loss: float
    val_accuracy: float
    val_macro_f1: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    card: ModelCard
    test_scores: Scores
    val_scores: Scores
    history: list[EpochProgress] = field(default_factory=list)
    seconds: float = 0.0


def _dataset(records: Sequence[ImageRecord], class_names: Sequence[str], batch_size: int,
             shuffle: bool, seed: int):
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


def _class_weights(labels: np.ndarray, n: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=n).astype(float)
    counts[counts == 0] = 1.0
    return {i: float(len(labels) / (n * c)) for i, c in enumerate(counts)}


def _copy_weights(source, target) -> None:
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def train(
    *,
    data_dir: Path,
    out_path: Path,
    config: TrainConfig = TrainConfig(),
    name: str | None = None,
    on_epoch_end: Callable[[EpochProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train, keep the epoch with the best validation macro-F1, evaluate on test, save model and card."""
    import keras

    from mlcore.model import build_model

    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    manifest = build_manifest(Path(data_dir), config.split)
    class_names = class_names_of(manifest)
    by_split = {s: [r for r in manifest if r.split == s] for s in ("train", "val", "test")}
    for split, items in by_split.items():
        if not items:
            raise ValueError(f"the {split} split is empty: too few series in {data_dir}")
    log.info("images per split: %s", {s: len(v) for s, v in by_split.items()})

    train_ds, train_labels = _dataset(by_split["train"], class_names, config.batch_size, True, config.seed)
    val_ds, val_labels = _dataset(by_split["val"], class_names, config.batch_size, False, config.seed)
    test_ds, test_labels = _dataset(by_split["test"], class_names, config.batch_size, False, config.seed)

    model = build_model(class_names=class_names, image_size=config.image_size, architecture=config.architecture,
                        augment=config.augment, seed=config.seed, weight_decay=config.weight_decay)
    steps = max(1, int(np.ceil(len(train_labels) / config.batch_size))) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    n = len(class_names)
    weights = _class_weights(train_labels, n) if config.class_weighting else None
    one_hot = lambda x, y: (x, keras.ops.one_hot(y, n))  # noqa: E731
    train_oh, val_oh = train_ds.map(one_hot), val_ds.map(one_hot)

    history: list[EpochProgress] = []
    best: dict[str, Any] = {"f1": -1.0, "weights": None, "epoch": 0}

    class Track(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch_started = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            val_probabilities = self.model.predict(val_ds, verbose=0)
            val = score(val_labels, val_probabilities, class_names)
            progress = EpochProgress(epoch=epoch + 1, epochs=config.epochs, loss=float(logs.get("loss", np.nan)),
                                     val_loss=float(logs.get("val_loss", np.nan)), val_accuracy=val.accuracy,
                                     val_macro_f1=val.macro_f1, seconds=time.monotonic() - self.epoch_started)
            history.append(progress)
            log.info("epoch %d/%d loss %.4f val_loss %.4f val_acc %.4f val_macro_f1 %.4f (%.0f s)", progress.epoch,
                     progress.epochs, progress.loss, progress.val_loss, val.accuracy, val.macro_f1, progress.seconds)
            if val.macro_f1 > best["f1"]:
                best.update(f1=val.macro_f1, weights=self.model.get_weights(), epoch=epoch + 1)
            elif epoch + 1 - best["epoch"] >= config.early_stopping_patience:
                log.info("early stop: no better validation macro-F1 since epoch %d", best["epoch"])
                self.model.stop_training = True
            if on_epoch_end is not None:
                on_epoch_end(progress)
            if should_stop is not None and should_stop():
                self.model.stop_training = True

    model.fit(train_oh, validation_data=val_oh, epochs=config.epochs, class_weight=weights,
              callbacks=[Track()], verbose=0)
    if best["weights"] is not None:
        model.set_weights(best["weights"])

    # The shipped model carries no augmentation layers and no optimizer state: smaller, and deterministic.
    final = build_model(class_names=class_names, image_size=config.image_size, architecture=config.architecture,
                        augment=False, seed=config.seed, weight_decay=config.weight_decay)
    _copy_weights(model, final)
    val_scores = score(val_labels, final.predict(val_ds, verbose=0), class_names)
    test_scores = score(test_labels, final.predict(test_ds, verbose=0), class_names)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    final.save(out_path)
    seconds = time.monotonic() - started
    card = ModelCard(
        name=name or out_path.stem,
        architecture=config.architecture,
        classes=tuple(class_names),
        input_size=config.image_size,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        data={
            "source": Path(data_dir).name,
            "images": len(manifest),
            "split": "by series (consecutive ids of a class with similar consecutive slices); no series on two sides",
            "images_per_split": {s: len(v) for s, v in by_split.items()},
            "series_per_split": {s: len({r.series for r in v}) for s, v in by_split.items()},
            "images_per_class": dict(sorted(Counter(r.label for r in manifest).items())),
        },
        metrics={"test": test_scores.to_dict(), "val": val_scores.to_dict(), "best_epoch": best["epoch"]},
        training={
            "config": config.to_dict(),
            "history": [h.__dict__ for h in history],
            "seconds": round(seconds, 1),
            "platform": f"{platform.machine()} {platform.system()}, TensorFlow {_tf_version()}, Keras {keras.__version__}",
        },
    )
    write_card(out_path, card)
    return TrainResult(model_path=out_path, card=card, test_scores=test_scores, val_scores=val_scores,
                       history=history, seconds=seconds)


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__
