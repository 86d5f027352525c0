"""Reading CT slices, grouping them into series and splitting by series.

Neighbouring ids of a class are neighbouring slices of one patient, so a random
per-image split puts near-copies of one patient on both sides and inflates the
scores. Everything here splits by *series*: runs of consecutive ids whose
consecutive slices also look alike.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from mlcore.config import SplitConfig

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
SPLITS: tuple[str, ...] = ("train", "val", "test")
_ID_PATTERN = re.compile(r"(\d+)$")
DEFAULT_DATA_DIR = Path("../shared/data/ct-kidney")


class ImageError(ValueError):
    """An image that cannot be read or decoded."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    label: str
    image_id: int
    series: str = ""
    split: str = ""


def data_dir_from_env() -> Path:
    return Path(os.environ.get("KIDNEY_DATA_DIR", str(DEFAULT_DATA_DIR)))


def load_image(source: Path | str | bytes) -> np.ndarray:
    """Decode a PNG or JPEG into a uint8 array of shape (H, W, 1) or (H, W, 3).

    Greyscale stays one channel and colour becomes RGB; the model itself decides how
    to combine channels, so callers never need to know what it was trained on.
    """
    try:
        if isinstance(source, (bytes, bytearray)):
            image = Image.open(io.BytesIO(source))
        else:
            image = Image.open(source)
        with image:
            image.load()
            if image.mode in ("L", "I;16", "I", "F", "1", "LA"):
                array = np.asarray(image.convert("L"))[..., None]
            else:
                array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc
    return np.ascontiguousarray(array, dtype=np.uint8)


def image_id_of(path: Path) -> int:
    match = _ID_PATTERN.search(path.stem)
    if not match:
        raise ValueError(f"no numeric id in file name {path.name!r}")
    return int(match.group(1))


def list_images(data_dir: Path) -> list[ImageRecord]:
    """All images of a folder of class subfolders, sorted by class and id."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder not found: {data_dir}")
    records: list[ImageRecord] = []
    for class_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for path in class_dir.iterdir():
            if path.suffix.lower() in IMAGE_SUFFIXES:
                records.append(ImageRecord(path=path, label=class_dir.name, image_id=image_id_of(path)))
    if not records:
        raise ValueError(f"no images found under {data_dir}")
    return sorted(records, key=lambda r: (r.label, r.image_id))


def class_names_of(records: Iterable[ImageRecord]) -> tuple[str, ...]:
    return tuple(sorted({r.label for r in records}))


def _thumbnail(path: Path, size: int = 32) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L").resize((size, size), Image.BILINEAR), dtype=np.float32)


def assign_series(records: Sequence[ImageRecord], config: SplitConfig) -> list[ImageRecord]:
    """Group each class's slices into series.

    A new series starts where the id jumps by more than ``max_id_gap`` or where
    consecutive slices differ a lot (a new patient whose ids happen to follow on).
    """
    by_class: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_class[record.label].append(record)
    out: list[ImageRecord] = []
    for label, items in sorted(by_class.items()):
        items.sort(key=lambda r: r.image_id)
        series_no = 0
        previous: ImageRecord | None = None
        previous_thumb: np.ndarray | None = None
        for record in items:
            thumb = _thumbnail(record.path)
            if previous is not None:
                gap = record.image_id - previous.image_id
                difference = float(np.mean(np.abs(thumb - previous_thumb)))
                if gap > config.max_id_gap or difference > config.max_slice_difference:
                    series_no += 1
            out.append(replace(record, series=f"{label}-s{series_no:04d}"))
            previous, previous_thumb = record, thumb
    return out


def split_by_series(records: Sequence[ImageRecord], config: SplitConfig) -> list[ImageRecord]:
    """Assign whole series to train/val/test, per class, aiming at the configured image fractions."""
    if any(not r.series for r in records):
        raise ValueError("assign_series must run before split_by_series")
    rng = random.Random(config.seed)
    series_of_class: dict[str, dict[str, list[ImageRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        series_of_class[record.label][record.series].append(record)
    split_of_series: dict[str, str] = {}
    for label in sorted(series_of_class):
        groups = series_of_class[label]
        names = sorted(groups)
        rng.shuffle(names)
        total = sum(len(groups[n]) for n in names)
        targets = {"test": config.test_fraction * total, "val": config.val_fraction * total}
        filled = {"test": 0, "val": 0}
        for name in names:
            size = len(groups[name])
            # Fill test first, then val; a series goes where it still fits best, train otherwise.
            for split in ("test", "val"):
                if filled[split] < targets[split] and filled[split] + size / 2 <= targets[split]:
                    split_of_series[name] = split
                    filled[split] += size
                    break
            else:
                split_of_series[name] = "train"
    return [replace(r, split=split_of_series[r.series]) for r in records]


def pixel_hash(path: Path) -> str:
    with Image.open(path) as image:
        return hashlib.sha256(np.asarray(image.convert("L")).tobytes()).hexdigest()


def build_manifest(data_dir: Path, config: SplitConfig) -> list[ImageRecord]:
    """List, de-duplicate, group and split a data folder."""
    records = list_images(data_dir)
    seen: set[str] = set()
    unique: list[ImageRecord] = []
    for record in records:
        digest = pixel_hash(record.path)
        if digest not in seen:
            seen.add(digest)
            unique.append(record)
    return split_by_series(assign_series(unique, config), config)
