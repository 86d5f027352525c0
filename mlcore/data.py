"""Listing CT slices, grouping them into series and splitting by series (decoding: mlcore.images).

Neighbouring ids of a class are neighbouring slices of one patient, so a random
per-image split puts near-copies of one patient on both sides and inflates the
scores. Everything here splits by *series*: runs of consecutive ids whose
consecutive slices also look alike.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from mlcore.config import SplitConfig
from mlcore.dicom import DicomError, dicom_as_png
from mlcore.images import ImageError, decode_grey

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
SPLITS: tuple[str, ...] = ("train", "val", "test")
_ID_PATTERN = re.compile(r"(\d+)$")
DEFAULT_DATA_DIR = Path("../shared/data/ct-kidney")


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    label: str
    image_id: int
    series: str = ""
    split: str = ""
    # "axial" or "coronal", from the body's outline; set by assign_series (see view_of).
    view: str = ""


def data_dir_from_env() -> Path:
    return Path(os.environ.get("KIDNEY_DATA_DIR", str(DEFAULT_DATA_DIR)))


def image_id_of(path: Path) -> int:
    match = _ID_PATTERN.search(path.stem)
    if not match:
        raise ValueError(f"no numeric id in file name {path.name!r}")
    return int(match.group(1))


def list_images(data_dir: Path, *, refused: dict[str, str] | None = None) -> list[ImageRecord]:
    """All images (PNG, JPEG, DICOM) of a folder of class subfolders, sorted by class and id.

    A file name without a numeric id raises ValueError, or, when ``refused`` is given, is recorded
    there with the reason and left out (the id is what orders slices into series).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder not found: {data_dir}")
    records: list[ImageRecord] = []
    for class_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for path in class_dir.iterdir():
            if path.suffix.lower() not in IMAGE_SUFFIXES | DICOM_SUFFIXES:
                continue
            try:
                records.append(ImageRecord(path=path, label=class_dir.name, image_id=image_id_of(path)))
            except ValueError as exc:
                if refused is None:
                    raise
                refused[str(path)] = f"{exc}; the id orders slices into series"
    if not records:
        raise ValueError(f"no images found under {data_dir}")
    return sorted(records, key=lambda r: (r.label, r.image_id))


def class_names_of(records: Iterable[ImageRecord]) -> tuple[str, ...]:
    return tuple(sorted({r.label for r in records}))


def _thumbnail(grey: np.ndarray, size: int = 32) -> np.ndarray:
    return np.asarray(Image.fromarray(grey).resize((size, size), Image.BILINEAR), dtype=np.float32)


# Grey level (0-255) above which a thumbnail pixel counts as body rather than air around it.
_BODY_LEVEL = 40.0
# A body outline this much taller than wide is a coronal slice; axial ones are wider than tall.
_CORONAL_ASPECT = 1.1


def view_of(thumbnail: np.ndarray) -> str:
    """A slice's view, "coronal" or "axial", from the height and width of the body in its thumbnail.

    In the developer set the two are far apart (axial outlines at most 0.9 as tall as wide, coronal
    at least 1.2), so this simple measure separates them without a model.
    """
    body = thumbnail > _BODY_LEVEL
    rows, columns = np.nonzero(body.any(axis=1))[0], np.nonzero(body.any(axis=0))[0]
    if rows.size == 0:
        return "axial"
    height, width = rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1
    return "coronal" if height > _CORONAL_ASPECT * width else "axial"


def assign_series(records: Sequence[ImageRecord], config: SplitConfig,
                  thumbnails: dict[Path, np.ndarray] | None = None) -> list[ImageRecord]:
    """Group each class's slices into series, and give each series its view (the majority of its slices').

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
            thumb = thumbnails[record.path] if thumbnails else _thumbnail(decode_grey(record.path))
            if previous is not None:
                gap = record.image_id - previous.image_id
                difference = float(np.mean(np.abs(thumb - previous_thumb)))
                if gap > config.max_id_gap or difference > config.max_slice_difference:
                    series_no += 1
            out.append(replace(record, series=f"{label}-s{series_no:04d}", view=view_of(thumb)))
            previous, previous_thumb = record, thumb
    views: dict[str, Counter[str]] = defaultdict(Counter)
    for record in out:
        views[record.series][record.view] += 1
    # Ties go to "axial", the usual view, by sorting before counting.
    return [replace(r, view=max(sorted(views[r.series]), key=views[r.series].__getitem__)) for r in out]


def split_by_series(records: Sequence[ImageRecord], config: SplitConfig) -> list[ImageRecord]:
    """Assign whole series to train/val/test, per class, aiming at the configured image fractions.

    With ``stratify_by_view`` each view of a class is split on its own, and validation and test take
    only series that fit. Stone is far more often coronal in the developer set than the other classes;
    split by class alone, one seed put all validation stones in coronal series and most test stones in
    axial ones, so validation could not judge the view the test asks about.
    """
    if any(not r.series for r in records):
        raise ValueError("assign_series must run before split_by_series")
    rng = random.Random(config.seed)
    if config.method == "random":
        # Leaky on purpose: only for comparing with published per-image figures.
        records = [replace(r, series=f"{r.series}-i{r.image_id}") for r in records]
    series_of_stratum: dict[tuple[str, str], dict[str, list[ImageRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        series_of_stratum[(record.label, record.view if config.stratify_by_view else "")][record.series].append(record)
    split_of_series: dict[str, str] = {}
    for stratum in sorted(series_of_stratum):
        groups = series_of_stratum[stratum]
        names = sorted(groups)
        rng.shuffle(names)
        total = sum(len(groups[n]) for n in names)
        targets = {"test": config.test_fraction * total, "val": config.val_fraction * total}
        filled = {"test": 0, "val": 0}
        for name in names:
            size = len(groups[name])
            # Fill test first, then val; train otherwise. By view, a held-out split takes only series
            # that fit in the room left: one large series that overshoots would make a class's score
            # that of one patient. The older rule (up to half a series over) stays for older models' splits.
            for split in ("test", "val"):
                room = targets[split] - filled[split]
                if (size <= room) if config.stratify_by_view else (room > 0 and size / 2 <= room):
                    split_of_series[name] = split
                    filled[split] += size
                    break
            else:
                split_of_series[name] = "train"
        _top_up_validation(groups, split_of_series, config.min_val_series)
    return [replace(r, split=split_of_series[r.series]) for r in records]


def _top_up_validation(groups: dict[str, list[ImageRecord]], split_of_series: dict[str, str], wanted: int) -> None:
    """Move training series of typical size into validation until it holds ``wanted`` series.

    Typical (median-sized) series keep the largest patients for training and skip one-slice
    fragments that would say nothing; the test series never move, so scores stay comparable.
    """
    in_val = sum(split_of_series[name] == "val" for name in groups)
    train = [name for name in groups if split_of_series[name] == "train"]
    if in_val >= wanted or len(train) < 2:
        return
    median = float(np.median([len(groups[name]) for name in train]))
    # Never empty training of a class: at least one series stays.
    for name in sorted(train, key=lambda n: (abs(len(groups[n]) - median), n))[:min(wanted - in_val, len(train) - 1)]:
        split_of_series[name] = "val"


def _pixel_digest(grey: np.ndarray) -> str:
    return hashlib.sha256(grey.tobytes()).hexdigest()


def _near_digest(grey: np.ndarray) -> str:
    thumb = _thumbnail(grey, 16)
    return hashlib.sha256((thumb > thumb.mean()).tobytes() + (thumb // 32).astype(np.uint8).tobytes()).hexdigest()


def pixel_hash(path: Path) -> str:
    """Equal for images with the same grey pixels, whatever their file format."""
    return _pixel_digest(decode_grey(path))


def near_hash(path: Path) -> str:
    """A coarse fingerprint: equal for re-encodings and tiny edits of one slice."""
    return _near_digest(decode_grey(path))


@dataclass(frozen=True)
class IngestReport:
    images: int
    refused: dict[str, str]
    exact_duplicates: int
    cross_class_duplicates: int
    images_per_split: dict[str, int]
    series_per_split: dict[str, int]
    images_per_class: dict[str, int]
    extra_images: int = 0


def extract_zip(archive: Path, into: Path) -> Path:
    """Unpack a zip of class folders safely (no absolute paths, no '..'), returning the folder holding them."""
    import zipfile

    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            target = (into / member.filename).resolve()
            if not str(target).startswith(str(into.resolve())):
                raise ValueError(f"unsafe path in archive: {member.filename!r}")
        bundle.extractall(into)
    entries = [p for p in into.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    # Zips often wrap the class folders in one top folder.
    if len(entries) == 1 and entries[0].is_dir() and not any(f.is_file() for f in entries[0].iterdir()):
        return entries[0]
    return into


def read_extra_manifest(path: Path) -> list[ImageRecord]:
    """Extra labelled slices (such as clinician-reviewed scans): CSV with path, label and optional series."""
    import csv

    records = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        _require_columns(reader, ("path", "label"), path)
        for row in reader:
            image_path = Path(row["path"])
            if not image_path.is_absolute():
                image_path = path.parent / image_path
            series = row.get("series") or f"extra-{image_path.stem}"
            records.append(ImageRecord(path=image_path, label=row["label"], image_id=0, series=series, split="train"))
    return records


def windowed_png(path: Path, folder: Path | None, label: str) -> Path:
    """A DICOM slice written as the windowed grey PNG an upload of it would be stored as.

    Training reads what inference reads: the same windowing (mlcore.dicom), kept in the ingest's
    work folder so the manifest points at files tf.data decodes.
    """
    if folder is None:
        raise ImageError("DICOM slices need an ingest work folder to be converted into")
    try:
        png = dicom_as_png(path.read_bytes())
    except (DicomError, OSError) as exc:
        raise ImageError(f"cannot use DICOM file: {exc}") from exc
    target = folder / label / f"{path.stem}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)
    return target


def ingest(source: Path, config: SplitConfig, *, workdir: Path | None = None,
           extra_manifests: Sequence[Path] = ()) -> tuple[list[ImageRecord], IngestReport]:
    """List, check, de-duplicate, group into series and split a data folder or zip.

    DICOM slices are windowed into grey PNGs under ``workdir``/dicom, as uploads are, and the
    manifest points at those.

    Unreadable files are refused with their reason; exact duplicates (same pixels) keep one
    copy; a slice found under two classes is dropped everywhere, since its label is unknown.
    Extra labelled slices go to training only, and their label wins over the data set's for
    the same pixels: they are a clinician's correction.
    """
    import logging

    log = logging.getLogger(__name__)
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".zip":
        source = extract_zip(source, (workdir or source.parent) / "extracted")
    extra = [r for manifest in extra_manifests for r in read_extra_manifest(Path(manifest))]
    refused: dict[str, str] = {}
    readable: list[tuple[ImageRecord, str, str]] = []
    thumbnails: dict[Path, np.ndarray] = {}
    dicom_dir = Path(workdir) / "dicom" if workdir is not None else None
    for record in [*list_images(source, refused=refused), *extra]:
        try:
            if record.path.suffix.lower() in DICOM_SUFFIXES:
                record = replace(record, path=windowed_png(record.path, dicom_dir, record.label))
            grey = decode_grey(record.path)  # each file is read and decoded once
        except ImageError as exc:
            refused[str(record.path)] = str(exc)
            log.warning("refused %s: %s", record.path, exc)
            continue
        readable.append((record, _pixel_digest(grey), _near_digest(grey)))
        thumbnails[record.path] = _thumbnail(grey)
    corrected = {digest: r.label for r, digest, _ in readable if r.split}  # only extra records arrive with a split
    labels_of_near: dict[str, set[str]] = defaultdict(set)
    for record, digest, near in readable:
        labels_of_near[near].add(corrected.get(digest, record.label))
    seen: set[str] = set()
    kept: list[ImageRecord] = []
    exact = cross = 0
    for record, digest, near in readable:
        if digest in corrected and not record.split:
            exact += 1  # the reviewed copy replaces it
            continue
        if digest in seen:
            exact += 1
            continue
        if len(labels_of_near[near]) > 1 and digest not in corrected:
            cross += 1
            continue
        seen.add(digest)
        kept.append(record)
    base = [r for r in kept if not r.split]
    extra_kept = [r for r in kept if r.split]
    records = split_by_series(assign_series(base, config, thumbnails), config) + extra_kept
    counts = lambda key: dict(sorted(Counter(key(r) for r in records).items()))  # noqa: E731
    series = {s: len({r.series for r in records if r.split == s}) for s in SPLITS}
    report = IngestReport(images=len(records), refused=refused, exact_duplicates=exact, cross_class_duplicates=cross,
                          images_per_split=counts(lambda r: r.split), series_per_split=series,
                          images_per_class=counts(lambda r: r.label), extra_images=len(extra_kept))
    return records, report


def build_manifest(data_dir: Path, config: SplitConfig) -> list[ImageRecord]:
    return ingest(data_dir, config)[0]


MANIFEST_FIELDS = ("path", "label", "image_id", "series", "split", "view")


def write_manifest(records: Sequence[ImageRecord], path: Path) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_FIELDS)
        for r in records:
            writer.writerow([str(Path(r.path).resolve()), r.label, r.image_id, r.series, r.split, r.view])


def read_manifest(path: Path) -> list[ImageRecord]:
    import csv

    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        _require_columns(reader, ("path", "label", "image_id", "series", "split"), path)
        return [ImageRecord(path=Path(row["path"]), label=row["label"], image_id=int(row["image_id"]),
                            series=row["series"], split=row["split"], view=row.get("view") or "")
                for row in reader]


def _require_columns(reader, columns: Sequence[str], path: Path) -> None:
    missing = [column for column in columns if column not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; its header is {reader.fieldnames}")
