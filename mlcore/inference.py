"""Batch inference with a saved model.

``predict_on_batch`` runs the compiled graph once per batch; ``model.predict`` per
image and eager calls cost two to five times as much per slice on a CPU.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from mlcore.card import ModelCard, read_card
from mlcore.data import load_image

ImageSource = Union[np.ndarray, Path, str, bytes]
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "kidney-resnet-v1.keras"


def default_model_path() -> Path:
    return Path(os.environ.get("KIDNEYWEB_MODEL_PATH", str(DEFAULT_MODEL_PATH)))


@dataclass(frozen=True)
class PredictionResult:
    label: str
    probabilities: dict[str, float]
    out_of_scope: bool = False

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


class Classifier:
    """A loaded model with its card; load once per process and reuse."""

    def __init__(self, model, card: ModelCard, batch_size: int = 32) -> None:
        self.model = model
        self.card = card
        self.batch_size = batch_size

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.classes

    @classmethod
    def load(cls, model_path: Path | str) -> "Classifier":
        import keras

        import mlcore.model  # noqa: F401  registers the custom layers before loading

        model_path = Path(model_path)
        if not model_path.exists():
            raise FileNotFoundError(f"model file not found: {model_path}")
        card = read_card(model_path)
        model = keras.saving.load_model(model_path, compile=False)
        if model.output_shape[-1] != len(card.classes):
            raise ValueError(f"model has {model.output_shape[-1]} outputs but its card lists {len(card.classes)} classes")
        return cls(model, card)

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, one row per image, batching images of equal shape together."""
        out = np.zeros((len(images), len(self.class_names)), dtype=np.float32)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            groups[image.shape].append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = np.stack([images[i] for i in chunk])
                out[chunk] = np.asarray(self.model.predict_on_batch(batch))
        return out

    def predict(self, sources: Sequence[ImageSource]) -> list[PredictionResult]:
        images = [s if isinstance(s, np.ndarray) else load_image(s) for s in sources]
        images = [img[..., None] if img.ndim == 2 else img for img in images]
        results = []
        for row in self.probabilities(images):
            probabilities = {name: float(p) for name, p in zip(self.class_names, row)}
            label = self.class_names[int(row.argmax())]
            results.append(PredictionResult(label=label, probabilities=probabilities))
        return results
