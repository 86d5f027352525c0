"""The model card: a JSON file beside each saved model (same stem, ``.json``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcore.data import ImageRecord

CARD_SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema_version", "name", "architecture", "classes", "input_size", "created", "data", "metrics")


@dataclass(frozen=True)
class ModelCard:
    name: str
    architecture: str
    classes: tuple[str, ...]
    input_size: int
    created: str
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    out_of_scope: dict[str, Any] = field(default_factory=dict)
    intended_use: str = (
        "Decision support for classifying axial or coronal kidney CT slices as Cyst, Normal, Stone or Tumor. "
        "Not a diagnosis: every result must be reviewed by a qualified clinician."
    )
    schema_version: int = CARD_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["classes"] = list(self.classes)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelCard":
        if not isinstance(values, dict):
            raise ValueError(f"a model card is a JSON object, not {type(values).__name__}")
        missing = [key for key in REQUIRED_KEYS if key not in values]
        if missing:
            raise ValueError(f"model card lacks {missing}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        kwargs["classes"] = tuple(values["classes"])
        return cls(**kwargs)


def check_model_archive(model_path: Path) -> None:
    """Without loading TensorFlow: is the file a Keras archive (a zip of the model's config and weights)?

    Catches a truncated copy or a wrong file before it is registered, rather than when every
    diagnosis by it fails.
    """
    import zipfile

    try:
        with zipfile.ZipFile(model_path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{Path(model_path).name} is not a Keras model archive ({exc})") from None
    missing = sorted({"config.json", "model.weights.h5"} - names)
    if missing:
        raise ValueError(f"{Path(model_path).name} is not a Keras model archive: it lacks {', '.join(missing)}")


def card_path_for(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def write_card(model_path: Path, card: ModelCard) -> Path:
    path = card_path_for(model_path)
    path.write_text(json.dumps(card.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_card(model_path: Path) -> ModelCard:
    path = card_path_for(model_path)
    if not path.exists():
        raise FileNotFoundError(f"model card not found beside the model: {path}")
    return ModelCard.from_dict(json.loads(path.read_text()))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def own_test_records(*, model_path: Path, data_dir: Path) -> list["ImageRecord"]:
    """The test slices of the split a model's card records (today's default split if it records none).

    Scoring a model on another split's test slices would score it on slices it may have trained or
    stopped early on. ``data_dir`` should hold image files: ingest refuses DICOM slices without a
    work folder to window them into.
    """
    from mlcore.config import SplitConfig, recorded_split
    from mlcore.data import ingest

    split = recorded_split(read_card(model_path).training) or SplitConfig()
    records, _ = ingest(Path(data_dir), split)
    return [record for record in records if record.split == "test"]
