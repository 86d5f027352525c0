"""Training configuration as frozen dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

ARCHITECTURES: tuple[str, ...] = ("resnet_small", "resnet50", "vgg16")


@dataclass(frozen=True)
class SplitConfig:
    """How slices are grouped into series and series into splits."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # Consecutive ids further apart than this start a new series.
    max_id_gap: int = 3
    # Mean absolute difference (0-255) between consecutive thumbnails above which a new series starts.
    max_slice_difference: float = 15.0
    seed: int = 42


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = "resnet_small"
    image_size: int = 256
    batch_size: int = 32
    epochs: int = 30
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    early_stopping_patience: int = 8
    augment: bool = True
    class_weighting: bool = True
    seed: int = 42
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; choose one of {ARCHITECTURES}")
        if self.image_size < 32:
            raise ValueError("image_size must be at least 32")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        values = dict(values)
        split = values.pop("split", None) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training parameters: {sorted(unknown)}")
        return cls(split=SplitConfig(**split), **values)
