"""The locked test series of a developer data set, whether its slices are JPEG files or DICOM."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from mlcore.config import SplitConfig
from mlcore.data import ingest
from mlcore.images import load_image
from mlcore.synthetic import dicom_bytes
from training import ml

SPLIT = SplitConfig(val_fraction=0.25, test_fraction=0.25)


def _as_dicom(folder):
    """Rewrite a class folder's JPEG slices as 8-bit DICOM captures holding the same grey levels."""
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"))
        (folder / f"IM{int(path.stem.split('-')[1]):04d}.dcm").write_bytes(
            dicom_bytes(grey, intercept=0.0, window=None, modality="OT"))
        path.unlink()


def test_dicom_developer_slices_are_locked_by_their_own_path_and_split_as_their_pixels_are(tmp_path, synthetic_data):
    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    before = ml.data_fingerprint(data, SPLIT)
    as_jpeg = ml.locked_test_records(data, SPLIT)
    _as_dicom(data / "Stone")

    as_dicom = ml.locked_test_records(data, SPLIT)

    assert ml.data_fingerprint(data, SPLIT) != before
    stone = [r for r in as_dicom if r["label"] == "Stone"]
    assert stone and all(r["path"].startswith("Stone/IM") and r["path"].endswith(".dcm") for r in stone)
    # The same pixels make the same series, split and hashes, so the gate and the export see one set.
    strip = lambda rows: [(r["label"], r["series"], r["pixel"], r["near"]) for r in rows]  # noqa: E731
    assert strip(as_dicom) == strip(as_jpeg)
    for record in stone:
        jpeg = next(r for r in as_jpeg if r["pixel"] == record["pixel"])
        with Image.open(synthetic_data / jpeg["path"]) as image:
            assert np.array_equal(load_image(data / record["path"])[..., 0], np.asarray(image.convert("L")))


def _card_with_split(split: dict) -> dict:
    return {"training": {"params": {"train": {"split": split}}}}


def test_a_model_split_its_own_way_has_the_locked_images_it_trained_or_validated_on_named(synthetic_data):
    locked = ml.locked_test_records(synthetic_data, SPLIT)
    theirs = dataclasses.replace(SPLIT, seed=7)
    # Written before stratify_by_view existed, as v3's card was.
    card = _card_with_split({k: v for k, v in dataclasses.asdict(theirs).items() if k != "stratify_by_view"})

    seen = ml.records_seen_by_card(card=card, data_dir=synthetic_data, split=dataclasses.asdict(SPLIT),
                                   records=locked)

    their_split = {Path(r.path).relative_to(synthetic_data).as_posix(): r.split
                   for r in ingest(synthetic_data, theirs)[0]}
    assert 0 < len(seen) < len(locked)
    assert [i for i, r in enumerate(locked) if their_split[r["path"]] != "test"] == seen


def test_a_model_split_as_the_locked_set_or_without_a_recorded_split_has_nothing_named(synthetic_data):
    locked = ml.locked_test_records(synthetic_data, SPLIT)
    ours = dataclasses.asdict(SPLIT)

    assert ml.records_seen_by_card(card=_card_with_split(ours), data_dir=synthetic_data, split=ours, records=locked) == []
    assert ml.records_seen_by_card(card={"name": "foundation"}, data_dir=synthetic_data, split=ours, records=locked) == []
