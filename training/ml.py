"""The training app's door into mlcore: the pipeline, the locked test series and model evaluation.

mlcore (and TensorFlow with parts of it) is imported inside the functions, so the web process
imports this module for free and only the training worker pays for the imports.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from django.conf import settings

if TYPE_CHECKING:
    from mlcore.config import Params, Paths, SplitConfig
    from mlcore.pipeline import PipelineResult

logger = logging.getLogger(__name__)

# Evaluation loads this many test images at a time, so memory stays flat whatever the test set's size.
EVALUATION_CHUNK = 256
# Pixel hashes are kept to this many hex digits: plenty to tell some thousands of images apart.
HASH_DIGITS = 16


def developer_data_dir() -> Path:
    """KIDNEY_DATA_DIR, else config.yaml's data_dir; relative paths are relative to the project directory."""
    from mlcore.config import load_paths

    configured = settings.KIDNEYWEB_TRAINING_DATA_DIR or load_paths(settings.KIDNEYWEB_TRAINING_CONFIG).data_dir
    path = Path(configured)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def params_from_dict(values: dict[str, Any]) -> Params:
    from mlcore.config import EvaluateConfig, Params, TrainConfig

    return Params(train=TrainConfig.from_dict(values["train"]), evaluate=EvaluateConfig(**values.get("evaluate", {})))


def data_fingerprint(data_dir: Path, split: SplitConfig) -> str:
    """Changes when a file of the data set is added, removed or rewritten, or the split parameters change.

    A listing (names, sizes, modification times) is enough to know whether the locked test set must be
    made again, and takes milliseconds where reading every image would take minutes.
    """
    from mlcore.data import DICOM_SUFFIXES, IMAGE_SUFFIXES

    digest = hashlib.sha256(json.dumps(dataclasses.asdict(split), sort_keys=True).encode())
    entries = []
    for class_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for entry in os.scandir(class_dir):
            if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES | DICOM_SUFFIXES:
                stat = entry.stat()
                entries.append(f"{class_dir.name}/{entry.name}\t{stat.st_size}\t{stat.st_mtime_ns}")
    for line in sorted(entries):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def pixel_hash(path: Path) -> str:
    from mlcore.data import pixel_hash as full_hash

    return full_hash(path)[:HASH_DIGITS]


def locked_test_records(data_dir: Path, split: SplitConfig) -> list[dict[str, str]]:
    """The test split of the developer data alone, exactly as mlcore's ingest makes it for `dvc repro`."""
    import tempfile

    from mlcore.data import ingest, near_hash

    with tempfile.TemporaryDirectory(prefix="kidneyweb-locked-test-") as workdir:
        records, report = ingest(data_dir, split, workdir=Path(workdir))
        test = [r for r in records if r.split == "test"]
        if not test:
            raise ValueError(f"the developer data set at {data_dir} has too few series for a test split")
        logger.info("Locked test series: %d images in %d series (of %d images)", len(test),
                    report.series_per_split.get("test", 0), report.images)
        # A DICOM slice is hashed as its windowed PNG (what an upload of it is stored as, so a reviewed
        # copy is recognised) but recorded by its own path, which mlcore's load_image reads the same way.
        source = _source_paths(data_dir, Path(workdir))
        return [
            {"path": source(r).relative_to(data_dir).as_posix(), "label": r.label, "series": r.series,
             "pixel": pixel_hash(Path(r.path)), "near": near_hash(Path(r.path))[:HASH_DIGITS]}
            for r in sorted(test, key=lambda r: (r.label, r.image_id))
        ]


def _source_paths(data_dir: Path, workdir: Path) -> Callable[[Any], Path]:
    """Maps an ingested record to the file it came from (ingest windows DICOM slices into ``workdir``)."""
    from mlcore.data import DICOM_SUFFIXES, list_images

    originals = {(r.label, r.path.stem): r.path for r in list_images(data_dir)
                 if r.path.suffix.lower() in DICOM_SUFFIXES}

    def source(record: Any) -> Path:
        path = Path(record.path)
        return originals[(record.label, path.stem)] if path.is_relative_to(workdir) else path

    return source


def records_seen_by_card(*, card: dict[str, Any], data_dir: Path, split: dict[str, Any],
                         records: Sequence[dict[str, str]]) -> list[int]:
    """Indices of locked test ``records`` that a model trained or stopped early on, by its card's split.

    A model shipped with the project, or trained before ``params.yaml``'s split changed, was split
    its own way: some of today's locked test series were its training or validation series, and it
    would look better on them than it is. Its card's split parameters, applied to the same data,
    say which. Empty when the card names no split or names the locked set's own.
    """
    import tempfile

    from mlcore.config import recorded_split, split_from_dict
    from mlcore.data import ingest

    theirs = recorded_split((card or {}).get("training"))
    if theirs is None or theirs == split_from_dict(split):
        return []
    with tempfile.TemporaryDirectory(prefix="kidneyweb-card-split-") as workdir:
        ingested, _ = ingest(data_dir, theirs, workdir=Path(workdir))
        source = _source_paths(data_dir, Path(workdir))
        seen = {source(r).relative_to(data_dir).as_posix() for r in ingested if r.split in ("train", "val")}
    indices = [i for i, record in enumerate(records) if record["path"] in seen]
    logger.info("%d of %d locked test images were training or validation images by the model's own split",
                len(indices), len(records))
    return indices


def records_sha256(records: Sequence[dict[str, str]]) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(f"{record['path']}\t{record['label']}\t{record['series']}\t{record['pixel']}\n".encode())
    return digest.hexdigest()


def drop_locked_test_images(export_dir: Path, manifest: Path, records: Sequence[dict[str, str]]) -> int:
    """Remove from a reviewed-scan export every slice that is (nearly) one of the locked test images.

    Reviewed scans go to training; a clinician may well have uploaded a slice of the test series, and
    training on it would make the gate's comparison dishonest.
    """
    from mlcore.data import near_hash

    pixels = {r["pixel"] for r in records}
    nears = {r["near"] for r in records}
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept, dropped = [], 0
    for row in rows:
        path = export_dir / row["path"]
        if pixel_hash(path) in pixels or near_hash(path)[:HASH_DIGITS] in nears:
            path.unlink(missing_ok=True)
            dropped += 1
        else:
            kept.append(row)
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["path", "label", "series"])
        writer.writeheader()
        writer.writerows(kept)
    if dropped:
        logger.info("Left out %d reviewed scans that are images of the locked test series", dropped)
    return len(kept)


def manifest_identity(manifest: Path) -> tuple[str, list[str]]:
    """The data manifest's hash (pixels, labels and splits of every image, so the same data gives the
    same hash wherever it lies) and the pixel hashes of the images the model trained or stopped on."""
    from mlcore.data import read_manifest

    lines, seen = [], set()
    for record in read_manifest(manifest):
        digest = pixel_hash(Path(record.path))
        lines.append(f"{digest},{record.label},{record.split}")
        if record.split in ("train", "val"):
            seen.add(digest)
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest(), sorted(seen)


@contextmanager
def _tracking_environment() -> Iterator[None]:
    # mlcore's tracking reads MLCORE_TRACKING; a deployment turns MLflow off with a setting instead.
    previous = os.environ.get("MLCORE_TRACKING")
    if not settings.KIDNEYWEB_TRAINING_TRACK:
        os.environ["MLCORE_TRACKING"] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLCORE_TRACKING", None)
        else:
            os.environ["MLCORE_TRACKING"] = previous


def run_pipeline(
    paths: Paths,
    params: Params,
    *,
    name: str,
    on_stage: Callable[[str], None],
    on_epoch_end: Callable[[Any], None],
    should_stop: Callable[[], bool],
) -> PipelineResult:
    """mlcore's stages in order (the same functions `dvc repro` runs), published to ``paths.model_out``."""
    from mlcore.pipeline import run_all

    with _tracking_environment():
        return run_all(paths, params, name=name, publish_to=paths.model_out, on_stage=on_stage,
                       on_epoch_end=on_epoch_end, should_stop=should_stop, track=settings.KIDNEYWEB_TRAINING_TRACK)


def annotate_card(model_path: Path, *, data: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """Add what the web side knows (data selection, manifest hash, run) to the model card beside the file."""
    from mlcore.card import read_card, write_card

    card = read_card(model_path)
    card = dataclasses.replace(card, data={**card.data, **data}, training={**card.training, **training})
    write_card(model_path, card)
    return card.to_dict()


def classify_records(classifier: Any, data_dir: Path, records: Sequence[dict[str, str]]) -> list[list[float]]:
    """Calibrated probabilities of a loaded mlcore Classifier for each test record, as a worker serves them."""
    from mlcore.images import load_image

    rows: list[list[float]] = []
    for start in range(0, len(records), EVALUATION_CHUNK):
        chunk = records[start:start + EVALUATION_CHUNK]
        images = [load_image(data_dir / record["path"]) for record in chunk]
        rows.extend([round(float(p), 6) for p in row] for row in classifier.probabilities(images))
    return rows


def load_classifier(path: Path) -> Any:
    from mlcore.inference import Classifier

    return Classifier.load(path)
