"""Series-level cross-validation of a training recipe, for choosing between recipes.

The locked test split says how good one trained model is; it cannot say which of two recipes is
better. It holds six tumour and seven stone patients and validation one tumour patient, so two
trainings of the same recipe differ there by as much as any recipe change tried. Here every
training and validation series is held out once, in folds of whole series stratified by class and
view, and the held-out probabilities of all folds are pooled per epoch. The test series are left
out entirely, so choosing a recipe this way never looks at them.

No epoch is chosen on the held-out folds: each fold trains for the same fixed number of epochs,
and the result reports every epoch, so a recipe is judged at an epoch count fixed in advance (or
by its whole curve), not at its luckiest epoch.

With ``train_fraction`` below 1, each fold trains on that share of its training series of each class
(drawn at random, at least one), while the held-out folds stay whole: points of a learning curve, which
say how much more patients of the same kind would help.

Each run can keep its held-out probabilities per slice (``save_held_out``), so that runs of one
recipe with other seeds can be averaged afterwards (``combine``): the score an ensemble of that
recipe would get on the same patients, without training it again.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mlcore.config import TrainConfig
from mlcore.data import ImageRecord
from mlcore.evaluate import by_series, score

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochScores:
    epoch: int
    accuracy: float
    macro_f1: float
    recall: dict[str, float]
    series_right: dict[str, int]  # a series read right when its mean probability names its class
    fold_macro_f1: tuple[float, ...]


@dataclass(frozen=True)
class HeldOut:
    """Every held-out slice of one cross-validation run and its probabilities at each epoch."""

    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: np.ndarray  # (slices,) class index
    series: tuple[str, ...]
    folds: np.ndarray  # (slices,) the fold that held the slice out
    probabilities: dict[int, np.ndarray]  # epoch -> (slices, classes)

    @property
    def series_per_class(self) -> dict[str, int]:
        label_of = dict(zip(self.series, self.labels.tolist()))
        return {c: sum(label == i for label in label_of.values()) for i, c in enumerate(self.class_names)}


@dataclass(frozen=True)
class CrossValidation:
    folds: int
    series: int
    slices: int
    series_per_fold: tuple[dict[str, int], ...]
    series_per_class: dict[str, int]
    epochs: tuple[EpochScores, ...]
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)
    train_fraction: float = 1.0  # the share of each fold's training series of each class trained on
    held_out: HeldOut | None = field(default=None, repr=False, compare=False)

    @property
    def last(self) -> EpochScores:
        return self.epochs[-1]

    def to_dict(self) -> dict[str, Any]:
        """The scores as JSON-ready data; the per-slice probabilities go to ``save_held_out``."""
        data = asdict(replace(self, held_out=None))
        del data["held_out"]
        return data


def assign_folds(records: Sequence[ImageRecord], folds: int, seed: int = 42) -> dict[str, int]:
    """Give every series a fold, so that each class and view is spread evenly over the folds.

    Within a class and view, series go largest first to the fold holding the fewest of its slices
    so far (ties: fewest series, then the lowest fold), after a seeded shuffle that breaks ties
    between series of one size.
    """
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    sizes: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for record in records:
        if not record.series:
            raise ValueError("assign_series must run before assign_folds")
        sizes[(record.label, record.view)][record.series] += 1
    rng = random.Random(seed)
    fold_of: dict[str, int] = {}
    for stratum in sorted(sizes):
        names = sorted(sizes[stratum])
        rng.shuffle(names)
        names.sort(key=lambda n: -sizes[stratum][n])  # stable: the shuffle orders equal sizes
        slices, count = [0] * folds, [0] * folds
        for name in names:
            fold = min(range(folds), key=lambda f: (slices[f], count[f], f))
            fold_of[name] = fold
            slices[fold] += sizes[stratum][name]
            count[fold] += 1
    return fold_of


def subsample_series(records: Sequence[ImageRecord], fraction: float, seed: int) -> list[ImageRecord]:
    """The records of a random ``fraction`` of each class's series (rounded, at least one series)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], not {fraction}")
    by_class: dict[str, dict[str, list[ImageRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_class[record.label][record.series].append(record)
    rng = random.Random(seed)
    kept: list[ImageRecord] = []
    for label in sorted(by_class):
        names = sorted(by_class[label])
        rng.shuffle(names)
        for name in names[:max(1, round(fraction * len(names)))]:
            kept += by_class[label][name]
    return kept


def cross_validate(
    *,
    records: Sequence[ImageRecord],
    class_names: Sequence[str],
    config: TrainConfig,
    folds: int = 5,
    on_epoch_end: Callable[[int, int, float], None] | None = None,
    train_fraction: float = 1.0,
    subsample_seed: int = 1000,
) -> CrossValidation:
    """Train one network per fold for ``config.epochs`` epochs and score the held-out series.

    Takes the training and validation records of a manifest (test records are refused: they
    would no longer be untouched). Ensembles are not trained here: one network per fold
    (``config.members`` is ignored) judges the recipe of its members. ``train_fraction`` trains each
    fold on a share of its training series (``subsample_series``, seeded ``subsample_seed`` + fold).
    """
    import keras

    from mlcore.model import model_for
    from mlcore.train import EpochProgress, fit_network, dataset

    if any(r.split == "test" for r in records):
        raise ValueError("cross-validation takes no test records: choosing a recipe must not look at them")
    started = time.monotonic()
    fold_of = assign_folds(records, folds, config.split.seed)
    # Early stopping would choose on the held-out fold; every fold runs its full epochs instead.
    config = config.with_overrides({"early_stopping_patience": config.epochs + 1, "members": 1})
    held: list[dict[int, np.ndarray]] = []
    held_labels: list[np.ndarray] = []
    held_records: list[ImageRecord] = []
    for fold in range(folds):
        train = [replace(r, split="train") for r in records if fold_of[r.series] != fold]
        if train_fraction != 1.0:  # checked here, at the first fold, before any training
            train = subsample_series(train, train_fraction, subsample_seed + fold)
        test = [replace(r, split="val") for r in records if fold_of[r.series] == fold]
        missing = sorted(set(class_names) - {r.label for r in train})
        if missing or not test:
            raise ValueError(f"fold {fold + 1} of {folds} leaves {missing or 'nothing'} to "
                             "train on or nothing held out: use fewer folds")
        seed = config.seed + fold
        keras.utils.set_random_seed(seed)
        log.info("fold %d/%d: %d slices in %d series to train on, %d held out", fold + 1, folds, len(train),
                 len({r.series for r in train}), len(test))
        val_ds, val_labels = dataset(test, class_names, config.batch_size)
        probabilities: dict[int, np.ndarray] = {}

        def report(progress: EpochProgress, fold: int = fold) -> None:
            if on_epoch_end is not None:
                on_epoch_end(fold + 1, progress.epoch, progress.val_macro_f1)

        # fit_network logs each epoch; its "member" is this fold's network.
        fit_network(model_for(config, class_names=class_names, seed=seed), train_records=train, val_ds=val_ds,
                    val_labels=val_labels, class_names=class_names, config=config, seed=seed, member=fold,
                    history=[], epoch_offset=0, total_epochs=config.epochs, on_epoch_end=report,
                    should_stop=None, on_validation=probabilities.__setitem__)
        held.append(probabilities)
        held_labels.append(val_labels)
        held_records.extend(test)
    common = sorted(set.intersection(*(set(p) for p in held)))
    held_out = HeldOut(class_names=tuple(class_names), paths=tuple(str(r.path) for r in held_records),
                       labels=np.concatenate(held_labels), series=tuple(r.series for r in held_records),
                       folds=np.array([fold_of[r.series] for r in held_records]),
                       probabilities={e: np.concatenate([p[e] for p in held]) for e in common})
    return CrossValidation(folds=folds, series=len(fold_of), slices=len(records),
                           series_per_fold=tuple(_series_per_class([r for r in records if fold_of[r.series] == f],
                                                                   class_names) for f in range(folds)),
                           series_per_class=held_out.series_per_class,
                           epochs=score_epochs(held_out), seconds=time.monotonic() - started,
                           config=config.to_dict(), train_fraction=train_fraction, held_out=held_out)


def score_epochs(held_out: HeldOut) -> tuple[EpochScores, ...]:
    """Pooled scores of every epoch of the held-out probabilities, with each fold's macro-F1."""
    class_names = held_out.class_names
    folds = sorted(set(held_out.folds.tolist()))
    out = []
    for epoch, pooled in sorted(held_out.probabilities.items()):
        scores = score(held_out.labels, pooled, class_names)
        verdicts = by_series(held_out.labels, pooled, held_out.series, class_names)
        per_fold = tuple(score(held_out.labels[held_out.folds == f], pooled[held_out.folds == f],
                               class_names).macro_f1 for f in folds)
        out.append(EpochScores(epoch=epoch, accuracy=scores.accuracy, macro_f1=scores.macro_f1,
                               recall={c: v["recall"] for c, v in scores.per_class.items()},
                               series_right=dict(verdicts["right"]), fold_macro_f1=per_fold))
    return tuple(out)


def combine(runs: Sequence[HeldOut]) -> HeldOut:
    """Average the held-out probabilities of runs over the same slices: an ensemble of their networks.

    Each slice is averaged only over networks that never trained on it, so the result is what an
    ensemble of the recipe would score on these patients. Runs must hold the same slices and
    classes; they may differ in seeds (and then in folds: the folds of the first run are reported).
    """
    if not runs:
        raise ValueError("combine needs at least one run")
    first = runs[0]
    order = np.argsort(np.array(first.paths))
    for run in runs[1:]:
        if run.class_names != first.class_names or sorted(run.paths) != sorted(first.paths):
            raise ValueError("runs to combine must hold the same classes and the same held-out slices")
    epochs = sorted(set.intersection(*(set(r.probabilities) for r in runs)))
    if not epochs:
        raise ValueError("the runs share no epoch to combine")
    aligned = [np.argsort(np.array(r.paths)) for r in runs]
    probabilities = {e: np.mean([r.probabilities[e][a] for r, a in zip(runs, aligned)], axis=0) for e in epochs}
    return HeldOut(class_names=first.class_names, paths=tuple(np.array(first.paths)[order].tolist()),
                   labels=first.labels[order], series=tuple(np.array(first.series)[order].tolist()),
                   folds=first.folds[order], probabilities=probabilities)


def save_held_out(held_out: HeldOut, path: Path) -> None:
    epochs = sorted(held_out.probabilities)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:  # given a name, np.savez would append ".npz" to one without it
        np.savez_compressed(f, class_names=np.array(held_out.class_names), paths=np.array(held_out.paths),
                            labels=held_out.labels, series=np.array(held_out.series), folds=held_out.folds,
                            epochs=np.array(epochs, dtype=int),
                            probabilities=np.stack([held_out.probabilities[e] for e in epochs]))


def load_held_out(path: Path) -> HeldOut:
    with np.load(path, allow_pickle=False) as data:
        return HeldOut(class_names=tuple(data["class_names"].tolist()), paths=tuple(data["paths"].tolist()),
                       labels=data["labels"], series=tuple(data["series"].tolist()), folds=data["folds"],
                       probabilities={int(e): p for e, p in zip(data["epochs"], data["probabilities"])})


def _series_per_class(records: Sequence[ImageRecord], class_names: Sequence[str]) -> dict[str, int]:
    label_of = {r.series: r.label for r in records}
    return {c: sum(label == c for label in label_of.values()) for c in class_names}
