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

from mlcore import SHIPPED_MODEL
from mlcore.card import ModelCard, read_card
from mlcore.images import load_image

ImageSource = Union[np.ndarray, Path, str, bytes]
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / SHIPPED_MODEL


def default_model_path() -> Path:
    return Path(os.environ.get("KIDNEYWEB_MODEL_PATH", str(DEFAULT_MODEL_PATH)))


@dataclass(frozen=True)
class PredictionResult:
    label: str
    probabilities: dict[str, float]
    out_of_scope: bool = False
    out_of_scope_reason: str = ""
    ood_distance: float | None = None

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
        try:
            model = keras.saving.load_model(model_path, compile=False)
        except Exception as exc:  # Keras reports a broken or foreign file with many exception types
            raise ValueError(f"{model_path} is not a loadable Keras model ({exc.__class__.__name__}: {exc})") from exc
        width = model.outputs[0].shape[-1]
        if width != len(card.classes):
            raise ValueError(f"model has {width} class outputs but its card lists {len(card.classes)} classes")
        return cls(model, card)

    @property
    def distance_threshold(self) -> float | None:
        value = (self.card.out_of_scope or {}).get("distance_threshold")
        return float(value) if value is not None else None

    def outputs(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities (one row per image) and, if the model has one, the out-of-scope distance."""
        out = np.zeros((len(images), len(self.class_names)), dtype=np.float32)
        has_distance = len(self.model.outputs) > 1
        distances = np.zeros(len(images), dtype=np.float32) if has_distance else None
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            groups[image.shape].append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = np.stack([images[i] for i in chunk])
                result = self.model.predict_on_batch(batch)
                if has_distance:
                    out[chunk] = np.asarray(result[0])
                    distances[chunk] = np.asarray(result[1])[:, 0]
                else:
                    out[chunk] = np.asarray(result)
        return out, distances

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.outputs(images)[0]

    def predict(self, sources: Sequence[ImageSource]) -> list[PredictionResult]:
        images = [slice_image(s) for s in sources]
        probabilities, distances = self.outputs(images)
        results = []
        for index, row in enumerate(probabilities):
            distance = float(distances[index]) if distances is not None else None
            reason = out_of_scope_reason(images[index], distance, self.distance_threshold)
            results.append(PredictionResult(
                label=self.class_names[int(row.argmax())],
                probabilities={name: float(p) for name, p in zip(self.class_names, row)},
                out_of_scope=bool(reason), out_of_scope_reason=reason, ood_distance=distance,
            ))
        return results


def slice_image(source: ImageSource) -> np.ndarray:
    """An image as the model takes it: height, width and channels (a grey image gets its one channel)."""
    image = source if isinstance(source, np.ndarray) else load_image(source)
    return image[..., None] if image.ndim == 2 else image


def out_of_scope_reason(image: np.ndarray, distance: float | None, threshold: float | None) -> str:
    """Why a slice is flagged out of scope, "" when it is not: the input checks first, then its distance in the
    model's features from the training slices against the card's threshold."""
    reason = input_check(image)
    if not reason and distance is not None and threshold is not None and distance > threshold:
        reason = "unlike the CT slices the model was trained on"
    return reason


def input_check(image: np.ndarray) -> str:
    """Cheap checks that catch what is plainly not a CT slice before trusting the model.

    CT slices are grey (RGB renderings have equal channels), have structure (not blank)
    and neighbouring pixels that agree (not noise). Returns the reason, or "".
    """
    pixels = image.astype(np.float32)
    if pixels.shape[-1] == 3:
        chroma = np.abs(pixels[..., 0] - pixels[..., 1]) + np.abs(pixels[..., 1] - pixels[..., 2])
        if float(chroma.mean()) > 12.0:
            return "a colour image, not a CT slice"
    grey = pixels.mean(axis=-1)
    spread = float(grey.std())
    if spread < 4.0:
        return "a blank image"
    roughness = float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean()) / 2
    if roughness / spread > 0.6:
        return "noise, not an image of anatomy"
    return ""
