"""Which params.yaml values a run may change, the presets, and their validation by mlcore's own config.

The split is locked: the promotion gate compares models on the test series it defines, so a run
that changed it would train on those series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from django.conf import settings

if TYPE_CHECKING:
    from mlcore.config import Params

# The values the UI shows as fields; the API accepts these and a few more.
EXPOSED: dict[str, type] = {
    "epochs": int,
    "learning_rate": float,
    "batch_size": int,
    "image_size": int,
    "architecture": str,
    "members": int,
}
ALLOWED: dict[str, type] = {
    **EXPOSED,
    "weight_decay": float,
    "dropout": float,
    "label_smoothing": float,
    "early_stopping_patience": int,
    "class_weighting": bool,
    "series_weighting": float,
    "fine_tune_epochs": int,
    "fine_tune_learning_rate": float,
    "seed": int,
    "normalization": str,
    "pooling": str,
    "width": int,
    "ema_momentum": float,
    "class_offsets": bool,
    "refit": bool,
    "augment": dict,
}
LOCKED = {
    "split": "The split is locked: the promotion gate compares models on the test series it defines.",
    "weights": "Pretrained weights files are chosen in params.yaml, not per run.",
}
# Beyond these a run would only exhaust the worker's memory or time; mlcore checks the lower bounds.
LIMITS: dict[str, tuple[float, float]] = {
    "epochs": (1, 500),
    "batch_size": (1, 512),
    "image_size": (32, 512),
    "learning_rate": (1e-7, 1.0),
    "fine_tune_epochs": (0, 500),
    "members": (1, 5),
    "width": (8, 64),
}
PRESETS: dict[str, str] = {
    "standard": "params.yaml as it is",
    "quick": "params.yaml with at most 3 epochs, one network and no refit: a quick check, not a model to ship",
}


class ParamsError(ValueError):
    """The requested parameters are not valid; the message says why."""


def base_params() -> Params:
    from mlcore.config import load_params

    try:
        return load_params(settings.KIDNEYWEB_TRAINING_PARAMS)
    except (OSError, ValueError, TypeError) as exc:
        raise ParamsError(f"{settings.KIDNEYWEB_TRAINING_PARAMS.name} cannot be read: {exc}") from None


def preset_overrides(preset: str, base: Params) -> dict[str, Any]:
    if preset not in PRESETS:
        raise ParamsError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    if preset == "quick":
        epochs = min(3, base.train.epochs)
        return {"epochs": epochs, "early_stopping_patience": epochs, "members": 1, "refit": False}
    return {}


def _checked(key: str, value: Any) -> Any:
    # Types, ranges and finiteness (1e400 in JSON is infinity) of every value, nested ones too, are
    # mlcore.config's to check; here only what a run may change, and within which limits.
    kind = ALLOWED[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind in (int, float):
        ok = isinstance(value, kind) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        article = {int: "a whole number", float: "a number", bool: "true or false", str: "a text", dict: "an object"}
        raise ParamsError(f"{key} must be {article[kind]}, not {value!r}.")
    if key in LIMITS:
        low, high = LIMITS[key]
        if not low <= value <= high:
            raise ParamsError(f"{key} must be between {low:g} and {high:g}, not {value!r}.")
    return value


def resolve(*, preset: str = "standard", overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Params]:
    """Check the administrator's overrides and return them with the full parameters of the run.

    Raises ParamsError with a message for people: unknown or locked keys, wrong types, values out of
    range, and anything mlcore's TrainConfig refuses (an unknown architecture, a too small image size).
    """
    from mlcore.config import Params

    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise ParamsError("params must be an object of params.yaml values, such as {\"epochs\": 5}.")
    for key in overrides:
        if key in LOCKED:
            raise ParamsError(LOCKED[key])
        if key not in ALLOWED:
            raise ParamsError(f"Unknown parameter {key!r}; a run may change {', '.join(sorted(ALLOWED))}.")
    clean = {key: _checked(key, value) for key, value in overrides.items()}
    base = base_params()
    merged = {**preset_overrides(preset, base), **clean}
    if clean.get("architecture", "resnet_small") != "resnet_small" and "members" not in clean:
        merged["members"] = 1  # ensembles are of small ResNets; another architecture means one network
    try:
        train = base.train.with_overrides(merged)
    except (ValueError, TypeError) as exc:
        raise ParamsError(str(exc)) from None
    return clean, Params(train=train, evaluate=base.evaluate)
