"""Pipeline configuration: ``params.yaml`` (hyper-parameters) and ``config.yaml`` (paths).

Both load into frozen dataclasses; unknown keys are refused so a typo in a parameter
file fails loudly instead of silently training with a default.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from mlcore import SHIPPED_MODEL

ARCHITECTURES: tuple[str, ...] = ("resnet_small", "resnet50", "vgg16")
POOLINGS: tuple[str, ...] = ("avg", "avgmax")
SAMPLINGS: tuple[str, ...] = ("weights", "balanced")
T = TypeVar("T")


# Seeds reach NumPy and TensorFlow, which take at most 2**32 - 1; networks and folds add their index to
# it, so half that range leaves room for every one of them.
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class SplitConfig:
    """How slices are grouped into series and series into splits."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # Consecutive ids further apart than this start a new series.
    max_id_gap: int = 3
    # Mean absolute difference (0-255) between consecutive 32 px thumbnails above which a new series starts.
    max_slice_difference: float = 15.0
    seed: int = 42
    # Validation gets at least this many series of each class (taken from training, test untouched):
    # one series per class cannot tell a network that reads that patient from one that reads the class.
    min_val_series: int = 0
    # Split each view (axial, coronal) of a class on its own, so every split holds both views of a class
    # where there are enough series, and fill validation and test only with series that fit (see
    # mlcore.data.split_by_series); min_val_series then counts per view. False is the split of models
    # trained before this option (their cards lack it), so their test series can still be found.
    stratify_by_view: bool = False
    # "series" for every real use; "random" (per image, leaky) only to compare with published figures.
    method: str = "series"

    def __post_init__(self) -> None:
        if self.method not in ("series", "random"):
            raise ValueError("split method must be 'series' or 'random'")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and leave room for training")
        if self.min_val_series < 0:
            raise ValueError("min_val_series must be 0 or more")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"split seed must be between 0 and {MAX_SEED}, not {self.seed!r}")


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = True
    flip: bool = True
    rotation: float = 0.04
    zoom: float = 0.1
    shift: float = 0.06
    contrast: float = 0.15
    brightness: float = 0.0
    # Random erasing (Zhong et al., 2020): the share of slices that lose one random rectangle (2-33 % of
    # the area) to noise, so that no single region, nor a patient's overall look, decides the class.
    erasing: float = 0.0
    # Mixup (Zhang et al., 2018): blend pairs of slices and their labels; 0 turns it off.
    mixup_alpha: float = 0.0
    # MixStyle (Zhou et al., 2021), resnet_small only: the share of batches in which the feature statistics
    # of the first two stages are blended across slices, so that a patient's or scanner's look stops deciding.
    mixstyle: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rotation", "zoom", "shift", "contrast", "brightness", "erasing", "mixstyle"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be between 0 and 1 (a fraction), not {getattr(self, name)!r}")
        if self.mixup_alpha < 0:
            raise ValueError(f"augment.mixup_alpha must be 0 (off) or more, not {self.mixup_alpha!r}")


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = "resnet_small"
    image_size: int = 256
    weights: str | None = None  # a local weights file for the backbone (mlcore pretrain writes one for resnet_small); none can be downloaded
    batch_size: int = 32
    epochs: int = 30
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.3
    normalization: str = "batch"  # "batch" or "group" (resnet_small only)
    standardize: bool = False  # per-image zero mean and unit variance inside the model
    # "avgmax" adds global max pooling to the average: a stone a few pixels wide is a peak
    # that averaging over the whole slice dilutes.
    pooling: str = "avg"
    # Channels of resnet_small's first stage; each later stage doubles them. Halving it quarters a
    # network's parameters and most of its work, so more networks fit the size and speed budget.
    width: int = 32
    # A second input channel: the white top-hat of the slice (the slice minus its morphological opening
    # with a square this share of the image side wide), which keeps only bright spots narrower than the
    # square. A stone is such a spot; 0 turns it off. resnet_small only.
    tophat: float = 0.0
    # Zoom each slice onto the patient's body before anything else sees it: scanners frame the abdomen
    # at different fields of view, so one scale for every slice makes a small calculus equally large.
    body_crop: bool = False
    label_smoothing: float = 0.05
    # Focal loss (cross-entropy times (1 - p)^gamma): slices the network already reads right weigh
    # less, so the few hard ones (small stones, tumours that look like cysts) weigh more. 0 is plain
    # cross-entropy.
    focal_gamma: float = 0.0
    early_stopping_patience: int = 8
    # Validate, keep and ship an exponential moving average of the weights (0 turns it off):
    # it smooths the epoch-to-epoch swings a few hundred patients' worth of slices cause.
    ema_momentum: float = 0.0
    # Train this many networks from different seeds and ship the average of their probabilities:
    # with a few hundred patients, single networks disagree on a new patient more than they err together.
    members: int = 1
    class_weighting: bool = True
    # "weights": each slice of a scarce class weighs more; "balanced": batches draw every class equally
    # often, so a scarce class's slices come back more often, each time augmented anew.
    sampling: str = "weights"
    # Within a class, weigh each slice by (slices in its series) ** -series_weighting: 0 counts slices,
    # 1 counts patients. The errors on new patients are whole series, and a few long series otherwise
    # decide what a scarce class looks like.
    series_weighting: float = 0.0
    # Fit per-class offsets to the decision on validation (macro-F1) before the temperature: a cheap
    # correction for a network that leans towards the classes it saw most patients of.
    class_offsets: bool = False
    # After each network's epoch is chosen on validation, train a fresh one with the same seed on the
    # training and validation slices together for that many epochs, and ship it with the calibration
    # fitted on the first: validation then adds its patients to what the shipped network learns from.
    refit: bool = False
    # A second, slower phase that also trains the backbone; only used with pretrained weights.
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-4
    seed: int = 42
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; choose one of {ARCHITECTURES}")
        if self.normalization not in ("batch", "group"):
            raise ValueError("normalization must be 'batch' or 'group'")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        if self.image_size < 32:
            raise ValueError("image_size must be at least 32")
        if self.members < 1:
            raise ValueError("members must be at least 1")
        if not 4 <= self.width <= 128:
            raise ValueError("width must be between 4 and 128")
        if not 0.0 <= self.tophat <= 0.25:
            raise ValueError("tophat must be in [0, 0.25] (a share of the image side; 0 turns it off)")
        if self.tophat and self.architecture != "resnet_small":
            raise ValueError("tophat is a second input channel of resnet_small networks only")
        if self.members > 1 and self.architecture != "resnet_small":
            raise ValueError("ensembles (members > 1) are built from resnet_small networks only")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ValueError("ema_momentum must be in [0, 1)")
        if not 0.0 <= self.series_weighting <= 1.0:
            raise ValueError("series_weighting must be in [0, 1]")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if not (self.learning_rate > 0 and self.fine_tune_learning_rate > 0):
            raise ValueError("learning rates must be positive")
        if self.weight_decay < 0 or self.early_stopping_patience < 1 or self.fine_tune_epochs < 0 or self.seed < 0:
            raise ValueError("weight_decay, fine_tune_epochs and seed must be 0 or more, early_stopping_patience 1 or more")
        if self.seed > MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED}, not {self.seed!r}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.label_smoothing < 1.0):
            raise ValueError("dropout and label_smoothing must be in [0, 1)")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}")
        if not 0.0 <= self.focal_gamma <= 5.0:
            raise ValueError("focal_gamma must be in [0, 5] (0 is plain cross-entropy)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        if not isinstance(values, Mapping):
            raise ValueError(f"train must be a mapping of parameters to values, not {values!r}")
        values = dict(values)
        nested = {"augment": AugmentConfig, "split": SplitConfig}
        for key, kind in nested.items():
            values[key] = _build(kind, values.get(key) or {}, key)
        return _build(cls, values, "params")

    def with_overrides(self, overrides: Mapping[str, Any]) -> "TrainConfig":
        merged = self.to_dict()
        for key, value in overrides.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return TrainConfig.from_dict(merged)


@dataclass(frozen=True)
class EvaluateConfig:
    # Below this calibrated confidence a result is shown as "needs review", never as a diagnosis.
    confidence_threshold: float = 0.7
    # Share of in-distribution validation slices allowed to be flagged out of scope.
    out_of_scope_quantile: float = 0.995


@dataclass(frozen=True)
class Params:
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Paths:
    data_dir: Path = Path("../shared/data/ct-kidney")
    artifacts_dir: Path = Path("artifacts")
    model_out: Path = Path(SHIPPED_MODEL)
    extra_manifests: tuple[Path, ...] = ()

    @property
    def manifest(self) -> Path:
        return self.artifacts_dir / "ingest" / "manifest.csv"

    @property
    def ingest_report(self) -> Path:
        return self.artifacts_dir / "ingest" / "report.json"

    @property
    def base_model(self) -> Path:
        return self.artifacts_dir / "base_model" / "base.keras"

    @property
    def trained_model(self) -> Path:
        return self.artifacts_dir / "train" / "model.keras"

    @property
    def history(self) -> Path:
        return self.artifacts_dir / "train" / "history.json"

    @property
    def scores(self) -> Path:
        return self.artifacts_dir / "evaluate" / "scores.json"

    @property
    def plots_dir(self) -> Path:
        return self.artifacts_dir / "evaluate" / "plots"


# What a YAML or JSON value may be for each plain annotation of these dataclasses, and how to say it.
_ACCEPTED: dict[str, tuple[tuple[type, ...], str]] = {
    "bool": ((bool,), "true or false"),
    "int": ((int,), "a whole number"),
    "float": ((int, float), "a number"),
    "str": ((str,), "a text"),
    "str | None": ((str, type(None)), "a text or null"),
}


def _check_types(kind: type, values: Mapping[str, Any], where: str) -> None:
    # A wrong type would otherwise surface as a TypeError deep in training, or be stored as it came.
    for f in dataclasses.fields(kind):
        if f.name not in values or f.type not in _ACCEPTED:
            continue
        value, (accepted, words) = values[f.name], _ACCEPTED[f.type]
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            raise ValueError(f"{where}.{f.name} must be {words}, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}.{f.name} must be a finite number, not {value!r}")


def _build(kind: type[T], values: Mapping[str, Any], where: str) -> T:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} must be a mapping of keys to values, not {values!r}")
    known = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown keys in {where}: {sorted(unknown)}")
    _check_types(kind, values, where)  # type: ignore[arg-type]
    return kind(**values)


def split_from_dict(values: Mapping[str, Any]) -> SplitConfig:
    """A split stored earlier (a model card, a locked test set), reading only the keys this version knows.

    A dict written before an option existed lacks it, and the option's default is the split that
    dict was made with.
    """
    known = {f.name for f in dataclasses.fields(SplitConfig)}
    return SplitConfig(**{key: value for key, value in values.items() if key in known})


def recorded_split(training: Mapping[str, Any] | None) -> SplitConfig | None:
    """The split a model card's ``training`` section says its model was trained with; None if it does not say."""
    split = (((training or {}).get("params") or {}).get("train") or {}).get("split")
    return split_from_dict(split) if isinstance(split, Mapping) else None


def load_params(path: Path | str = "params.yaml", overrides: Mapping[str, Any] | None = None) -> Params:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path} must hold the sections train and evaluate, not {raw!r}")
    unknown = set(raw) - {"train", "evaluate"}
    if unknown:
        raise ValueError(f"unknown sections in {path}: {sorted(unknown)}")
    train = TrainConfig.from_dict(raw.get("train") or {})
    if overrides:
        train = train.with_overrides(overrides)
    return Params(train=train, evaluate=_build(EvaluateConfig, raw.get("evaluate") or {}, "evaluate"))


def load_paths(path: Path | str = "config.yaml") -> Paths:
    """Paths from ``config.yaml`` (defaults when it is absent); ``KIDNEY_DATA_DIR`` overrides the data folder."""
    path = Path(path)
    raw = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path} must map names to paths, not {raw!r}")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        many = key == "extra_manifests"
        values = (value or []) if many else [value]
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"{path}: {key} must be {'a list of CSV files' if many else 'a path'}, not {value!r}")
        kwargs[key] = tuple(Path(v) for v in values) if many else Path(value)
    paths = _build(Paths, kwargs, str(path))
    if os.environ.get("KIDNEY_DATA_DIR"):
        paths = dataclasses.replace(paths, data_dir=Path(os.environ["KIDNEY_DATA_DIR"]))
    return paths
