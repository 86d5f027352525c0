"""The promotion gate: is a candidate model at least as good as the active one on the locked test series?

Plain functions over labels and probabilities (no database), so the rule is tested on its own:
the candidate may be worse than the active model by at most ``margin`` on macro-F1 and on every
class's recall. Calibration (expected calibration error) is reported beside them but does not decide.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class GateError(ValueError):
    """The two evaluations cannot be compared (different classes, unknown labels)."""


def side_scores(
    *,
    labels: Sequence[str],
    class_names: Sequence[str],
    probabilities: Sequence[Sequence[float]],
    include: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Scores of one model on the test records (all of them, or those at the ``include`` indices)."""
    from mlcore.evaluate import score

    if len(labels) != len(probabilities):
        raise GateError(f"{len(probabilities)} predictions for {len(labels)} test images")
    indices = list(range(len(labels))) if include is None else list(include)
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({labels[i] for i in indices} - set(index))
    if unknown:
        raise GateError(f"the model has no class {', '.join(unknown)} of the test set")
    y_true = np.array([index[labels[i]] for i in indices], dtype=int)
    probs = np.asarray([probabilities[i] for i in indices], dtype=float).reshape(len(indices), len(class_names))
    scores = score(y_true, probs, list(class_names))
    return {
        "images": scores.support,
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
        "expected_calibration_error": scores.expected_calibration_error,
        "recall": {name: values["recall"] for name, values in scores.per_class.items()},
        "precision": {name: values["precision"] for name, values in scores.per_class.items()},
        "support": {name: values["support"] for name, values in scores.per_class.items()},
        "confusion_matrix": scores.confusion_matrix,
    }


def _check(metric: str, candidate: float, baseline: float, margin: float) -> dict[str, Any]:
    delta = candidate - baseline
    # A hair of tolerance so that "exactly the margin worse" passes despite float rounding.
    return {"metric": metric, "candidate": candidate, "baseline": baseline, "delta": delta,
            "passed": delta >= -margin - 1e-9}


def judge(
    *,
    candidate: dict[str, Any] | None,
    baseline: dict[str, Any] | None,
    margin: float,
    has_active: bool = True,
    missing: str = "",
) -> dict[str, Any]:
    """The verdict: ``passed``, the reasons it did not, and every compared figure side by side.

    ``candidate``/``baseline`` are ``side_scores`` results; ``None`` when that model has not been
    evaluated (``missing`` says why). With no active model there is nothing to be worse than.
    """
    verdict: dict[str, Any] = {"passed": False, "margin": margin, "reasons": [], "checks": [],
                               "candidate": candidate, "baseline": baseline}
    if candidate is None:
        verdict["reasons"].append(missing or "The candidate has not been evaluated on the locked test series.")
        return verdict
    if not has_active:
        verdict["passed"] = True
        verdict["summary"] = "No model is active, so there is nothing to compare with."
        return verdict
    if baseline is None:
        verdict["reasons"].append(missing or "The active model has not been evaluated on the locked test series.")
        return verdict
    if set(candidate["recall"]) != set(baseline["recall"]):
        verdict["reasons"].append(
            f"The models know different classes ({', '.join(sorted(candidate['recall']))} against "
            f"{', '.join(sorted(baseline['recall']))})."
        )
        return verdict
    if candidate["images"] != baseline["images"]:
        raise GateError("the two models were scored on different test images")

    checks = [_check("macro_f1", candidate["macro_f1"], baseline["macro_f1"], margin)]
    checks += [_check(f"recall_{name}", candidate["recall"][name], baseline["recall"][name], margin)
               for name in sorted(baseline["recall"])]
    verdict["checks"] = checks
    verdict["calibration"] = {
        "candidate": candidate["expected_calibration_error"],
        "baseline": baseline["expected_calibration_error"],
        "delta": candidate["expected_calibration_error"] - baseline["expected_calibration_error"],
    }
    for check in checks:
        if not check["passed"]:
            name = "macro-F1" if check["metric"] == "macro_f1" else f"recall of {check['metric'][len('recall_'):]}"
            verdict["reasons"].append(
                f"The candidate's {name} is {check['candidate']:.3f} against {check['baseline']:.3f} for the "
                f"active model: {-check['delta']:.3f} worse, more than the {margin:.3f} margin."
            )
    verdict["passed"] = not verdict["reasons"]
    if verdict["passed"]:
        verdict["summary"] = (
            f"Not worse than the active model by more than {margin:.3f} on macro-F1 or any class's recall "
            f"({candidate['images']} locked test images)."
        )
    return verdict
