from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlcore.config import SplitConfig
from mlcore.data import (ImageRecord, assign_series, build_manifest, list_images, read_manifest, split_by_series,
                         view_of, write_manifest)

from .test_images import png_declaring


def test_a_manifest_without_its_columns_is_refused_by_name(tmp_path):
    from mlcore.data import read_extra_manifest, read_manifest

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,class\nx.png,Cyst\n")
    with pytest.raises(ValueError, match="lacks the column\\(s\\) path, label;"):
        read_extra_manifest(manifest)
    with pytest.raises(ValueError, match="lacks the column\\(s\\) path, label, image_id, series, split"):
        read_manifest(manifest)


def test_list_images_reads_class_folders_and_ids(synthetic_dataset):
    records = list_images(synthetic_dataset)
    assert {r.label for r in records} == {"Cyst", "Normal", "Stone", "Tumor"}
    assert len(records) == 4 * 4 * 5
    assert all(r.image_id > 0 for r in records)


def test_list_images_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "absent")


def test_series_break_at_id_gaps(synthetic_dataset):
    records = assign_series(list_images(synthetic_dataset), SplitConfig())
    stone = [r for r in records if r.label == "Stone"]
    assert len({r.series for r in stone}) == 4
    # slices of one series have consecutive ids
    for series in {r.series for r in stone}:
        ids = sorted(r.image_id for r in stone if r.series == series)
        assert ids == list(range(ids[0], ids[0] + 5))


def test_series_break_where_consecutive_slices_differ_even_without_an_id_gap(tmp_path):
    folder = tmp_path / "Normal"
    folder.mkdir()
    for i in range(1, 7):
        value = 20 if i <= 3 else 200  # a different patient from id 4 on
        Image.fromarray(np.full((32, 32), value, np.uint8)).save(folder / f"Normal-{i}.png")
    records = assign_series(list_images(tmp_path), SplitConfig())
    assert len({r.series for r in records}) == 2


def test_no_series_is_on_two_sides_of_the_split(synthetic_dataset):
    config = SplitConfig(val_fraction=0.25, test_fraction=0.25, seed=3)
    manifest = build_manifest(synthetic_dataset, config)
    split_of: dict[str, set[str]] = {}
    for record in manifest:
        split_of.setdefault(record.series, set()).add(record.split)
    assert all(len(splits) == 1 for splits in split_of.values())
    assert {r.split for r in manifest} == {"train", "val", "test"}
    for label in ("Cyst", "Normal", "Stone", "Tumor"):
        assert {r.split for r in manifest if r.label == label} == {"train", "val", "test"}


def test_split_is_reproducible_for_a_seed(synthetic_dataset):
    config = SplitConfig(val_fraction=0.25, test_fraction=0.25, seed=5)
    first = [(r.path, r.split) for r in build_manifest(synthetic_dataset, config)]
    second = [(r.path, r.split) for r in build_manifest(synthetic_dataset, config)]
    assert first == second


def _records_of_series(label: str, sizes: list[int], view: str = "axial", first_id: int = 1) -> list[ImageRecord]:
    records, image_id = [], first_id
    for number, size in enumerate(sizes):
        for _ in range(size):
            records.append(ImageRecord(path=Path(f"{label}-{image_id}.png"), label=label, image_id=image_id,
                                       series=f"{label}-{view}-s{number:04d}", view=view))
            image_id += 1
    return records


def _series_by_split(records: list[ImageRecord]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for record in records:
        out[record.split].add(record.series)
    return out


def _outline(height: int, width: int, side: int = 32) -> np.ndarray:
    """A thumbnail with a grey body of the given extent on black air."""
    image = np.zeros((side, side), np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    image[top:top + height, left:left + width] = 120.0
    return image


def test_view_of_tells_a_tall_body_outline_from_a_wide_one():
    assert view_of(_outline(20, 30)) == "axial"
    assert view_of(_outline(24, 24)) == "axial"
    assert view_of(_outline(30, 18)) == "coronal"
    assert view_of(np.zeros((32, 32), np.float32)) == "axial"  # no body at all: the usual view


def test_a_series_takes_the_view_of_most_of_its_slices(tmp_path):
    folder = tmp_path / "Stone"
    folder.mkdir()
    # One series (consecutive ids, alike); one slice of it is cut so that it looks wide.
    for image_id, (height, width) in enumerate([(200, 120)] * 4 + [(200, 200)], start=1):
        Image.fromarray(np.kron(_outline(height // 8, width // 8), np.ones((8, 8))).astype(np.uint8)) \
            .save(folder / f"Stone-{image_id}.png")
    records = assign_series(list_images(tmp_path), SplitConfig(max_slice_difference=255))
    assert len({r.series for r in records}) == 1
    assert {r.view for r in records} == {"coronal"}


def test_split_by_view_puts_both_views_of_a_class_on_every_side():
    # Stone as in the developer set: a few large axial patients, and the coronal series few and small.
    records = (_records_of_series("Stone", [142, 38, 31, 19, 15, 11, 8, 7, 6, 5, 1])
               + _records_of_series("Stone", [62, 13, 12, 9, 8, 6, 4, 4, 3], view="coronal", first_id=1000))
    def coronal_share_of_test(config: SplitConfig) -> float:
        test = [r for r in split_by_series(records, config) if r.split == "test"]
        return sum(r.view == "coronal" for r in test) / len(test)

    for seed in range(50):
        split = split_by_series(records, SplitConfig(seed=seed, stratify_by_view=True))
        sides = {(r.view, r.split) for r in split}
        assert sides == {(view, side) for view in ("axial", "coronal") for side in ("train", "val", "test")}, seed
        # Coronal series hold 30 % of the slices; the test split keeps about that share.
        assert 0.2 <= coronal_share_of_test(SplitConfig(seed=seed, stratify_by_view=True)) <= 0.4, seed
    # Split by class alone, some seeds leave a view out of a side, or fill test with one view.
    plain = [SplitConfig(seed=seed, stratify_by_view=False) for seed in range(50)]
    assert any(len({(r.view, r.split) for r in split_by_series(records, config)}) < 6 for config in plain)
    assert max(coronal_share_of_test(config) for config in plain) > 0.6


def test_held_out_splits_take_only_series_that_fit_in_the_room_left():
    # 15 % of 400 slices is 60: the 100-slice series would make the test split one patient.
    records = _records_of_series("Tumor", [100, 150, 60, 30, 20, 15, 10, 10, 5])
    for seed in range(10):
        split = split_by_series(records, SplitConfig(seed=seed, stratify_by_view=True))
        sizes = {name: len([r for r in records if r.series == name]) for name in {r.series for r in records}}
        for side in ("val", "test"):
            names = {r.series for r in split if r.split == side}
            assert sum(sizes[name] for name in names) <= 60, (seed, side)
        assert {r.split for r in split if r.series.endswith("s0000")} == {"train"}


def test_without_views_the_split_of_older_models_is_kept():
    # Their cards lack the option; their test series must still come out as they were trained.
    records = _records_of_series("Tumor", [100, 150, 60, 30, 20, 15, 10, 10, 5])
    splits = [split_by_series(records, SplitConfig(seed=seed)) for seed in range(10)]
    assert not SplitConfig().stratify_by_view
    # That rule let a series up to twice the room left into a held-out split.
    assert any({r.split for r in split if r.series.endswith("s0000")} != {"train"} for split in splits)


def test_the_manifest_keeps_the_view_and_reads_one_written_before_views(tmp_path):
    records = split_by_series(_records_of_series("Stone", [4, 4, 4]) + _records_of_series("Cyst", [4, 4], "coronal"),
                              SplitConfig(seed=1, stratify_by_view=True))
    path = tmp_path / "manifest.csv"
    write_manifest(records, path)
    assert [(r.label, r.series, r.split, r.view) for r in read_manifest(path)] == \
        [(r.label, r.series, r.split, r.view) for r in records]
    older = tmp_path / "older.csv"
    older.write_text("path,label,image_id,series,split\n/x/Cyst-1.png,Cyst,1,Cyst-s0000,train\n")
    assert read_manifest(older)[0].view == ""


def test_min_val_series_tops_up_validation_from_training_and_leaves_test_alone():
    # One large series fills the validation fraction alone, as one Tumor patient does in the real set.
    records = _records_of_series("Tumor", [60, 200, 40, 30, 25, 20, 18, 15, 12, 10, 1])
    plain = _series_by_split(split_by_series(records, SplitConfig(seed=1)))
    topped = _series_by_split(split_by_series(records, SplitConfig(seed=1, min_val_series=3)))
    assert len(plain["val"]) < 3
    assert len(topped["val"]) == 3
    assert topped["test"] == plain["test"]
    assert plain["val"] <= topped["val"]
    moved = {len([r for r in records if r.series == name]) for name in topped["val"] - plain["val"]}
    train_sizes = sorted(len([r for r in records if r.series == name]) for name in plain["train"])
    # Typical patients move; the largest training series and one-slice fragments stay.
    assert max(train_sizes) not in moved and 1 not in moved


def test_min_val_series_keeps_at_least_one_training_series():
    records = _records_of_series("Stone", [10, 10, 10, 10, 10])
    topped = _series_by_split(split_by_series(records, SplitConfig(val_fraction=0.2, test_fraction=0.2,
                                                                   min_val_series=5)))
    assert len(topped["train"]) == 1


def test_min_val_series_must_not_be_negative():
    with pytest.raises(ValueError, match="min_val_series"):
        SplitConfig(min_val_series=-1)


def test_split_refuses_records_without_series():
    with pytest.raises(ValueError):
        split_by_series([ImageRecord(path=Path("x.png"), label="Cyst", image_id=1)], SplitConfig())


def test_exact_duplicate_pixels_are_dropped(tmp_path):
    folder = tmp_path / "Cyst"
    folder.mkdir()
    array = np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)
    Image.fromarray(array).save(folder / "Cyst-1.png")
    Image.fromarray(array).save(folder / "Cyst-2.png")
    Image.fromarray(255 - array).save(folder / "Cyst-3.png")
    manifest = build_manifest(tmp_path, SplitConfig(val_fraction=0.0, test_fraction=0.0))
    assert sorted(r.image_id for r in manifest) == [1, 3]


def test_random_split_mode_puts_slices_of_one_series_on_several_sides(synthetic_dataset):
    """The leaky split exists only for comparison with published figures; it must differ from the honest one."""
    config = SplitConfig(val_fraction=0.25, test_fraction=0.25, method="random")
    manifest = build_manifest(synthetic_dataset, config)
    patients: dict[tuple[str, int], set[str]] = {}
    for r in manifest:
        patients.setdefault((r.label, r.image_id // 15), set()).add(r.split)
    assert any(len(sides) > 1 for sides in patients.values())


def test_ingest_reads_a_zip_of_class_folders(tmp_path, synthetic_dataset):
    import shutil

    from mlcore.data import ingest

    archive = shutil.make_archive(str(tmp_path / "set"), "zip", root_dir=synthetic_dataset.parent, base_dir="data")
    records, report = ingest(Path(archive), SplitConfig(val_fraction=0.25, test_fraction=0.25), workdir=tmp_path / "w")
    assert report.images == 80 and report.refused == {}


def test_ingest_refuses_unreadable_files_with_a_reason_and_keeps_the_rest(tmp_path, synthetic_dataset):
    import shutil

    from mlcore.data import ingest

    data = tmp_path / "data"
    shutil.copytree(synthetic_dataset, data)
    (data / "Cyst" / "Cyst-999.jpg").write_bytes(b"\xff\xd8\xff garbage")
    records, report = ingest(data, SplitConfig(val_fraction=0.25, test_fraction=0.25))
    assert report.images == 80
    assert list(report.refused) == [str(data / "Cyst" / "Cyst-999.jpg")]
    assert "cannot decode" in report.refused[str(data / "Cyst" / "Cyst-999.jpg")]


def test_ingest_refuses_a_file_name_without_an_id_and_an_oversized_image_and_keeps_the_rest(tmp_path, synthetic_dataset):
    import shutil

    from mlcore.data import ingest

    data = tmp_path / "data"
    shutil.copytree(synthetic_dataset, data)
    shutil.copy(next((data / "Cyst").iterdir()), data / "Cyst" / "Cyst-1 copy.jpg")
    (data / "Stone" / "Stone-998.png").write_bytes(png_declaring(30000, 30000))

    records, report = ingest(data, SplitConfig(val_fraction=0.25, test_fraction=0.25))

    assert report.images == 80 and len(records) == 80
    assert "no numeric id" in report.refused[str(data / "Cyst" / "Cyst-1 copy.jpg")]
    assert "cannot decode" in report.refused[str(data / "Stone" / "Stone-998.png")]
    with pytest.raises(ValueError, match="no numeric id"):
        list_images(data)  # without a place to record refusals, it still says so


def test_a_slice_filed_under_two_classes_is_dropped_and_a_reviewed_label_wins(tmp_path, synthetic_dataset):
    import csv
    import shutil

    from mlcore.data import ingest

    data = tmp_path / "data"
    shutil.copytree(synthetic_dataset, data)
    shutil.copy(data / "Cyst" / "Cyst-1.jpg", data / "Tumor" / "Tumor-500.jpg")  # same slice, two labels
    reviewed = tmp_path / "reviewed.csv"
    with open(reviewed, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "series"])
        writer.writerow([str(data / "Stone" / "Stone-1.jpg"), "Normal", "patient-7"])
    records, report = ingest(data, SplitConfig(val_fraction=0.25, test_fraction=0.25), extra_manifests=[reviewed])
    assert report.cross_class_duplicates == 2
    assert not any(r.path.name in ("Cyst-1.jpg", "Tumor-500.jpg") for r in records)
    stone_1 = [r for r in records if r.path.name == "Stone-1.jpg"]
    assert len(stone_1) == 1 and stone_1[0].label == "Normal" and stone_1[0].split == "train"


def test_ingest_trains_on_dicom_slices_windowed_as_uploads_are(tmp_path, synthetic_dataset):
    import shutil

    from mlcore.data import ingest
    from mlcore.dicom import read_dicom
    from mlcore.synthetic import dicom_bytes
    from mlcore.train import LOAD_SIZE, dataset

    data = tmp_path / "data"
    shutil.copytree(synthetic_dataset, data)
    # A scanner's series of the Stone class, one file per slice, in HU stored as HU + 1024.
    rng = np.random.default_rng(4)
    body = rng.integers(900, 1300, (48, 48)).astype(np.uint16)
    written = {}
    for number in range(201, 206):
        raw = dicom_bytes(body + number, transfer_syntax="1.2.840.10008.1.2.4.70" if number == 201 else None)
        (data / "Stone" / f"IM{number:04d}.dcm").write_bytes(raw)
        written[number] = read_dicom(raw).pixels[..., 0]
    (data / "Stone" / "IM0099.dcm").write_bytes(dicom_bytes(np.zeros((2, 8, 8), np.uint16)))  # two frames

    records, report = ingest(data, SplitConfig(val_fraction=0.25, test_fraction=0.25), workdir=tmp_path / "work")

    assert report.images == 85
    assert list(report.refused) == [str(data / "Stone" / "IM0099.dcm")]
    assert "2 frames" in report.refused[str(data / "Stone" / "IM0099.dcm")]
    converted = sorted((r for r in records if r.path.parent == tmp_path / "work" / "dicom" / "Stone"),
                       key=lambda r: r.image_id)
    assert [r.image_id for r in converted] == [201, 202, 203, 204, 205]
    assert len({r.series for r in converted}) == 1  # consecutive, alike slices: one series
    for record in converted:
        with Image.open(record.path) as image:
            assert np.array_equal(np.asarray(image), written[record.image_id])
    # The training input pipeline decodes the converted slices like any other.
    batches, _ = dataset(converted, ("Cyst", "Normal", "Stone", "Tumor"), 8)
    images, labels = next(iter(batches))
    assert images.shape == (5, LOAD_SIZE, LOAD_SIZE, 1) and set(labels.numpy()) == {2}


def test_dicom_slices_without_a_work_folder_are_refused_with_the_reason(tmp_path):
    from mlcore.data import ingest
    from mlcore.synthetic import dicom_bytes

    (tmp_path / "Cyst").mkdir()
    (tmp_path / "Cyst" / "IM0001.dcm").write_bytes(dicom_bytes(np.full((8, 8), 1000, np.uint16)))
    records, report = ingest(tmp_path, SplitConfig())
    assert records == []
    assert "need an ingest work folder" in report.refused[str(tmp_path / "Cyst" / "IM0001.dcm")]
