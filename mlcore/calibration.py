"""What turns trained networks into the shipped model: calibrated probabilities and an out-of-scope distance.

Both are fitted on slices the networks did not train on (the validation split). A network refitted on
training and validation slices together has no such slices left, so it takes the temperature and offsets
fitted to the network of its recipe that held validation out, and an out-of-scope threshold scaled by
how much further held-out slices lay from the training classes for that network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mlcore.data import ImageRecord
from mlcore.evaluate import fit_class_offsets, fit_temperature

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    temperature: float
    class_offsets: tuple[float, ...]  # () when none were fitted
    out_of_scope_threshold: float
    # The threshold over the same quantile of the training slices' own distances: how much further
    # held-out slices lie from the training classes than training slices do (1.0 when not measured).
    held_out_distance_ratio: float = 1.0


def _feature_statistics(features: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    means = np.stack([features[labels == c].mean(axis=0) if (labels == c).any() else features.mean(axis=0)
                      for c in range(n)])
    centred = features - means[labels]
    covariance = centred.T @ centred / max(1, len(features) - 1)
    # Shrinkage keeps the inverse stable with few slices per feature.
    covariance += np.eye(covariance.shape[0]) * (1e-3 + 0.05 * np.trace(covariance) / covariance.shape[0])
    return means.astype(np.float32), np.linalg.inv(covariance).astype(np.float32)


def _nearest_class_distance(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """What the shipped model's MahalanobisDistance layer computes, for features already in hand."""
    diff = features[:, None, :] - means[None, :, :]
    return np.sqrt(np.maximum(np.einsum("bcd,de,bce->bc", diff, precision, diff).min(axis=1), 0.0))


def _with_statistics(plain, train_ds, train_labels: np.ndarray, n: int, *, temperature: float,
                     offsets: np.ndarray | None):
    """The shipped form of ``plain``, its out-of-scope statistics taken from the slices it trained on,
    and those slices' own distances."""
    from mlcore.model import feature_model, inference_model

    _, train_features = (np.asarray(a) for a in feature_model(plain).predict(train_ds, verbose=0))
    means, precision = _feature_statistics(train_features, train_labels, n)
    shipped = inference_model(plain, temperature=temperature, offsets=offsets, class_means=means, precision=precision)
    return shipped, _nearest_class_distance(train_features, means, precision)


def calibrate(plain, records: Sequence[ImageRecord], class_names: Sequence[str], batch_size: int = 32,
              out_of_scope_quantile: float = 0.995, *, class_offsets: bool = False):
    """Wrap a trained model with validation-fitted decision offsets (if asked), a temperature and
    training-feature statistics.

    Returns the shipped model and its calibration; the out-of-scope distance threshold is the
    given quantile of validation distances, so that share of real slices stays in scope.
    """
    from mlcore.model import feature_model
    from mlcore.train import dataset

    train_ds, train_labels = dataset([r for r in records if r.split == "train"], class_names, batch_size)
    val_ds, val_labels = dataset([r for r in records if r.split == "val"], class_names, batch_size)
    val_probabilities, _ = (np.asarray(a) for a in feature_model(plain).predict(val_ds, verbose=0))
    offsets = fit_class_offsets(val_probabilities, val_labels) if class_offsets else None
    temperature = fit_temperature(val_probabilities, val_labels, offsets)
    shipped, train_distances = _with_statistics(plain, train_ds, train_labels, len(class_names),
                                                temperature=temperature, offsets=offsets)
    _, val_distances = (np.asarray(a) for a in shipped.predict(val_ds, verbose=0))
    threshold = float(np.quantile(val_distances[:, 0], out_of_scope_quantile))
    own = float(np.quantile(train_distances, out_of_scope_quantile))
    log.info("class offsets %s, temperature %.3f, out-of-scope distance threshold %.2f (%.2fx the training slices')",
             None if offsets is None else np.round(offsets, 2).tolist(), temperature, threshold, threshold / own)
    return shipped, Calibration(temperature=temperature, out_of_scope_threshold=threshold,
                                class_offsets=() if offsets is None else tuple(float(v) for v in offsets),
                                held_out_distance_ratio=threshold / own if own > 0 else 1.0)


def calibrate_like(plain, records: Sequence[ImageRecord], class_names: Sequence[str], *, like: Calibration,
                   batch_size: int = 32, out_of_scope_quantile: float = 0.995):
    """Ship a network refitted on all of ``records`` with the calibration fitted to its held-out twin.

    The temperature and offsets are taken as they are. The out-of-scope threshold is the quantile of
    its own training slices' distances times the twin's held-out ratio, so about the same share of
    new real slices stays in scope.
    """
    from mlcore.train import dataset

    fit_ds, fit_labels = dataset(records, class_names, batch_size)
    offsets = np.asarray(like.class_offsets, dtype=np.float32) if like.class_offsets else None
    shipped, distances = _with_statistics(plain, fit_ds, fit_labels, len(class_names), temperature=like.temperature,
                                          offsets=offsets)
    own = float(np.quantile(distances, out_of_scope_quantile))
    threshold = own * like.held_out_distance_ratio
    log.info("refitted: temperature %.3f as fitted on validation, out-of-scope distance threshold %.2f", like.temperature,
             threshold)
    return shipped, Calibration(temperature=like.temperature, class_offsets=like.class_offsets,
                                out_of_scope_threshold=threshold, held_out_distance_ratio=like.held_out_distance_ratio)
