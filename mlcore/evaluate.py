"""Classification scores, computed with NumPy so they are the same everywhere."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Scores:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    support: int
    expected_calibration_error: float
    roc_auc: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_calibration_error(probabilities: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank statistic; None when one side is empty."""
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    # Average ranks over ties so equal scores count half.
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def series_bootstrap(y_true: Sequence[int], probabilities: np.ndarray, series: Sequence[str],
                     class_names: Sequence[str], *, rounds: int = 2000, level: float = 0.95,
                     seed: int = 0) -> dict[str, list[float]]:
    """Confidence intervals that treat a patient's series, not a slice, as the unit of evidence.

    Slices of one series are near-copies, so a slice-level interval would be far too narrow.
    Series are resampled with replacement within each class (every class keeps its number of
    series), and the percentile interval of each score is returned.
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(probabilities).argmax(axis=1)
    n = len(class_names)
    names = sorted(set(series))
    index = {name: i for i, name in enumerate(names)}
    # One confusion matrix per series: a bootstrap round only has to add them up.
    per_series = np.zeros((len(names), n, n), dtype=np.int64)
    np.add.at(per_series, (np.array([index[s] for s in series]), y_true, y_pred), 1)
    label_of = per_series.sum(axis=2).argmax(axis=1)
    groups = [np.flatnonzero(label_of == c) for c in range(n) if (label_of == c).any()]
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {"accuracy": [], "macro_f1": [], **{f"recall_{c}": [] for c in class_names}}
    for _ in range(rounds):
        chosen = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        matrix = per_series[chosen].sum(axis=0)
        tp = np.diag(matrix).astype(float)
        actual, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
        recall = np.divide(tp, actual, out=np.zeros(n), where=actual > 0)
        precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=precision + recall > 0)
        samples["accuracy"].append(tp.sum() / matrix.sum())
        samples["macro_f1"].append(float(f1.mean()))
        for c, name in enumerate(class_names):
            samples[f"recall_{name}"].append(recall[c])
    tail = (1.0 - level) / 2 * 100
    return {key: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for key, v in samples.items()}


def by_series(y_true: Sequence[int], probabilities: np.ndarray, series: Sequence[str],
              class_names: Sequence[str]) -> dict[str, Any]:
    """Results per patient's series: what a reader of the whole series would be told.

    A series' verdict is the class of its mean probability. Errors on new patients come in
    whole series, so this shows how many patients of each class the model reads right.
    """
    y_true = np.asarray(y_true, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    rows = []
    for name in sorted(set(series)):
        members = np.array([s == name for s in series])
        label = int(np.bincount(y_true[members], minlength=len(class_names)).argmax())
        verdict = int(probabilities[members].mean(axis=0).argmax())
        rows.append({"series": name, "label": class_names[label], "slices": int(members.sum()),
                     "verdict": class_names[verdict],
                     "slices_right": float((probabilities[members].argmax(axis=1) == y_true[members]).mean())})
    right = {c: sum(r["verdict"] == c for r in rows if r["label"] == c) for c in class_names}
    total = {c: sum(r["label"] == c for r in rows) for c in class_names}
    return {
        "method": "a series' verdict is the class of its slices' mean probability",
        "accuracy": float(np.mean([r["verdict"] == r["label"] for r in rows])) if rows else 0.0,
        "recall": {c: right[c] / total[c] if total[c] else None for c in class_names},
        "right": right,
        "series": rows,
    }


def by_view(y_true: Sequence[int], probabilities: np.ndarray, views: Sequence[str],
            class_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Accuracy and per-class recall of the axial and of the coronal slices apart.

    Stone is far more often coronal than the other classes in the developer set, so a model can
    score well on stones overall while missing the axial ones a clinician mostly sends.
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(probabilities, dtype=float).argmax(axis=1)
    views = np.asarray(views)
    out: dict[str, dict[str, Any]] = {}
    for view in sorted(set(views.tolist())):
        members = views == view
        truth, verdict = y_true[members], y_pred[members]
        out[view or "unknown"] = {
            "slices": int(members.sum()),
            "accuracy": float((truth == verdict).mean()),
            "slices_per_class": {c: int((truth == i).sum()) for i, c in enumerate(class_names)},
            "recall": {c: float((verdict[truth == i] == i).mean()) if (truth == i).any() else None
                       for i, c in enumerate(class_names)},
        }
    return out


def by_confidence(y_true: Sequence[int], probabilities: np.ndarray, class_names: Sequence[str], threshold: float,
                  series: Sequence[str] | None = None, out_of_scope: Sequence[bool] | None = None) -> dict[str, Any]:
    """How often the results shown as they are and those marked for review were right, and, per true class, the
    slices read wrong with no mark to warn of it.

    A result is marked when its top probability is under ``threshold`` or, given ``out_of_scope``, when it was
    flagged out of scope: the web marks both as needing review, so only the rest are leaned on as shown. What a
    clinician leans on is the unmarked result: its accuracy, not the overall one, says how far. ``series`` counts
    the patients the unmarked misses came from, since slices of one patient are alike."""
    y_true = np.asarray(y_true, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    flagged = np.zeros(len(y_true), dtype=bool) if out_of_scope is None else np.asarray(out_of_scope, dtype=bool)
    verdict, sure = probabilities.argmax(axis=1), (probabilities.max(axis=1) >= threshold) & ~flagged

    def part(members: np.ndarray) -> dict[str, int]:
        return {"slices": int(members.sum()), "right": int((verdict[members] == y_true[members]).sum())}

    missed: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(class_names):
        members = sure & (y_true == i) & (verdict != i)
        missed[name] = {"slices": int(members.sum()),
                        "read_as": {class_names[k]: int((verdict[members] == k).sum())
                                    for k in range(len(class_names)) if k != i and (verdict[members] == k).any()}}
        if series is not None:
            missed[name]["series"] = len({s for s, m in zip(series, members) if m})
    result = {"threshold": float(threshold), "confident": part(sure), "uncertain": part(~sure),
              "confident_wrong": missed}
    if out_of_scope is not None:
        # Part of "uncertain": every slice flagged, whatever its top probability.
        result["out_of_scope"] = part(flagged)
    return result


def score(y_true: Sequence[int], probabilities: np.ndarray, class_names: Sequence[str]) -> Scores:
    y_true = np.asarray(y_true, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    y_pred = probabilities.argmax(axis=1)
    n = len(class_names)
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    per_class: dict[str, dict[str, float]] = {}
    for i, name in enumerate(class_names):
        tp = matrix[i, i]
        predicted = matrix[:, i].sum()
        actual = matrix[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(actual)}
    return Scores(
        accuracy=float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        macro_f1=float(np.mean([v["f1"] for v in per_class.values()])),
        per_class=per_class,
        confusion_matrix=matrix.tolist(),
        support=int(len(y_true)),
        expected_calibration_error=expected_calibration_error(probabilities, y_true) if len(y_true) else 0.0,
        roc_auc={name: roc_auc(probabilities[:, i], y_true == i) for i, name in enumerate(class_names)},
    )


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> float:
    matrix = np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)
    tp = np.diag(matrix).astype(float)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)
    return float(np.mean(np.divide(2 * tp, denominator, out=np.zeros(n), where=denominator > 0)))


def fit_class_offsets(probabilities: np.ndarray, y_true: Sequence[int], *, step: float = 0.25,
                      limit: float = 2.0) -> np.ndarray:
    """Per-class offsets to the log-probabilities that maximise validation macro-F1.

    Networks trained on a few patients per class lean towards the classes they saw most
    patients of (here: Stone and Tumor slices read as Cyst). Shifting the decision is the
    classical correction of such a prior (an operating point), fitted on validation only.
    The first class stays at 0, as only differences matter. Every grid point is tried, since
    coordinate ascent stopped in the wrong one of several near-equal optima here; ties go to
    the smallest shift.
    """
    logits = np.log(np.clip(np.asarray(probabilities, dtype=float), 1e-7, 1.0))
    y_true = np.asarray(y_true, dtype=int)
    n = logits.shape[1]
    if n > 5:
        raise ValueError(f"class offsets search every grid point: fine for up to 5 classes, not for {n}")
    grid = np.arange(-limit, limit + step / 2, step)

    def quality(offsets: np.ndarray) -> tuple[float, float]:
        return _macro_f1(y_true, (logits + offsets).argmax(axis=1), n), -float(np.abs(offsets).sum())

    candidates = (np.array((0.0, *rest)) for rest in itertools.product(grid, repeat=n - 1))
    return max(candidates, key=quality)


def fit_temperature(probabilities: np.ndarray, y_true: Sequence[int], offsets: np.ndarray | None = None) -> float:
    """The temperature minimising validation negative log-likelihood (a 1-D search is enough)."""
    logits = np.log(np.clip(np.asarray(probabilities, dtype=float), 1e-7, 1.0))
    if offsets is not None:
        logits = logits + np.asarray(offsets, dtype=float)
    y_true = np.asarray(y_true, dtype=int)

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(y_true)), y_true].mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 400))
    best = min(grid, key=nll)
    fine = np.linspace(best * 0.9, best * 1.1, 101)
    return float(min(fine, key=nll))


def save_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
    ax.set_title("Test split confusion matrix")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_training_curves(history: Sequence[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    # Refit epochs train on the validation slices, so they have no validation scores to draw.
    validated = [h for h in history if h.get("val_loss") is not None]
    seen = [h["epoch"] for h in validated]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    left.plot(epochs, [h["loss"] for h in history], label="train loss")
    left.plot(seen, [h["val_loss"] for h in validated], label="validation loss")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(seen, [h["val_accuracy"] for h in validated], label="validation accuracy")
    right.plot(seen, [h["val_macro_f1"] for h in validated], label="validation macro-F1")
    right.set_xlabel("epoch")
    right.set_ylim(0, 1)
    right.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
