import csv
import hashlib

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from diagnosis import services
from mlcore.config import SplitConfig
from mlcore.data import ingest, list_images, read_extra_manifest
from mlcore.synthetic import write_dataset

from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory, image_bytes


def reviewed(organization, *, ai: str, reviewed_as: str, patient=None, seed: int = 0, fmt: str = "PNG"):
    data = image_bytes(fmt, (40, 40), seed=seed)
    scan = ScanFactory(
        patient=patient or PatientFactory(organization=organization),
        format=fmt,
        image=ContentFile(data, name="x"),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    prediction = DonePredictionFactory(scan=scan, label=ai)
    ReviewFactory(prediction=prediction, label=reviewed_as)
    return scan


def read_rows(manifest):
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_export_has_class_folders_and_a_manifest_that_mlcore_reads(organization, tmp_path):
    patient = PatientFactory(organization=organization)
    corrected = reviewed(organization, ai="Stone", reviewed_as="Tumor", patient=patient, seed=1)
    agreed = reviewed(organization, ai="Cyst", reviewed_as="Cyst", patient=patient, seed=2, fmt="JPEG")
    out = tmp_path / "reviewed"

    manifest = services.reviewed_scans_export(organization=organization, out_dir=out)

    assert manifest == out / "manifest.csv"
    assert read_rows(manifest) == [
        {"path": f"Tumor/Tumor-{corrected.pk}.png", "label": "Tumor", "series": f"patient-{patient.pk}"},
        {"path": f"Cyst/Cyst-{agreed.pk}.jpg", "label": "Cyst", "series": f"patient-{patient.pk}"},
    ]
    assert (out / "Tumor" / f"Tumor-{corrected.pk}.png").read_bytes() == image_bytes("PNG", (40, 40), seed=1)
    extra = read_extra_manifest(manifest)
    assert {(r.path.name, r.label, r.split) for r in extra} == {
        (f"Tumor-{corrected.pk}.png", "Tumor", "train"), (f"Cyst-{agreed.pk}.jpg", "Cyst", "train")
    }
    assert all(r.path.is_file() for r in extra)
    folder = list_images(out)
    assert {(r.label, r.image_id) for r in folder} == {("Tumor", corrected.pk), ("Cyst", agreed.pk)}


def test_the_newest_review_wins(organization, tmp_path):
    scan = reviewed(organization, ai="Stone", reviewed_as="Stone")
    ReviewFactory(prediction=scan.latest_prediction, label="Normal")

    rows = read_rows(services.reviewed_scans_export(organization=organization, out_dir=tmp_path / "x"))

    assert [row["label"] for row in rows] == ["Normal"]


def test_only_the_organizations_reviewed_scans_are_exported(organization, other_organization, tmp_path):
    mine = reviewed(organization, ai="Stone", reviewed_as="Stone")
    reviewed(other_organization, ai="Stone", reviewed_as="Stone", seed=3)
    DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)))  # unreviewed

    rows = read_rows(services.reviewed_scans_export(organization=organization, out_dir=tmp_path / "x"))

    assert [row["path"] for row in rows] == [f"Stone/Stone-{mine.pk}.png"]


def test_mlcore_ingest_takes_the_export_as_extra_training_data_where_the_reviewed_label_wins(organization, tmp_path):
    data = write_dataset(tmp_path / "data", series_per_class=2, slices_per_series=3, size=40)
    # A clinician says this data-set "Normal" slice shows a cyst.
    relabelled = (data / "Normal" / "Normal-1.jpg").read_bytes()
    scan = reviewed(organization, ai="Normal", reviewed_as="Cyst")
    scan.format = "JPEG"
    scan.image.save("x", ContentFile(relabelled))
    manifest = services.reviewed_scans_export(organization=organization, out_dir=tmp_path / "reviewed")

    records, report = ingest(data, SplitConfig(), extra_manifests=[manifest])

    assert report.extra_images == 1
    labels_of_that_slice = [r.label for r in records if r.path.read_bytes() == relabelled]
    assert labels_of_that_slice == ["Cyst"]


def test_exporting_again_replaces_the_previous_export_after_a_correction(organization, tmp_path):
    scan = reviewed(organization, ai="Stone", reviewed_as="Stone")
    out = tmp_path / "x"
    services.reviewed_scans_export(organization=organization, out_dir=out)
    ReviewFactory(prediction=scan.latest_prediction, label="Tumor")

    services.reviewed_scans_export(organization=organization, out_dir=out)

    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        f"Tumor/Tumor-{scan.pk}.png", "manifest.csv",
    ]


def test_an_unreadable_image_fails_the_export_and_leaves_the_previous_one_whole(organization, tmp_path):
    first = reviewed(organization, ai="Stone", reviewed_as="Stone", seed=1)
    second = reviewed(organization, ai="Cyst", reviewed_as="Cyst", seed=2)
    out = tmp_path / "x"
    services.reviewed_scans_export(organization=organization, out_dir=out)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    stored = second.image.read()
    second.image.storage.delete(second.image.name)  # storage lost the file, or cannot be reached

    with pytest.raises(ValidationError, match=f"image of scan {second.pk} could not be read"):
        services.reviewed_scans_export(organization=organization, out_dir=out)

    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no half-copied folder left beside it
    assert second.image.storage.save(second.image.name, ContentFile(stored)) == second.image.name
    services.reviewed_scans_export(organization=organization, out_dir=out)  # once storage is back, it works
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_non_empty_folder_that_holds_no_export_is_refused_and_left_alone(organization, tmp_path):
    reviewed(organization, ai="Stone", reviewed_as="Stone")
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(ValidationError, match="not empty"):
        services.reviewed_scans_export(organization=organization, out_dir=tmp_path)

    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "manifest.csv").exists()


def test_with_nothing_reviewed_the_manifest_has_only_its_header(organization, tmp_path):
    manifest = services.reviewed_scans_export(organization=organization, out_dir=tmp_path / "x")

    assert manifest.read_text().strip() == "path,label,series"
    assert read_extra_manifest(manifest) == []


def test_a_person_registered_twice_and_merged_is_one_series_so_no_split_puts_them_on_both_sides(
        organization, boss, tmp_path):
    kept = PatientFactory(organization=organization)
    duplicate = PatientFactory(organization=organization, birth_date=kept.birth_date)
    reviewed(organization, ai="Cyst", reviewed_as="Cyst", patient=kept, seed=1)
    reviewed(organization, ai="Cyst", reviewed_as="Cyst", patient=duplicate, seed=2)
    before = read_rows(services.reviewed_scans_export(organization=organization, out_dir=tmp_path / "before"))
    assert len({row["series"] for row in before}) == 2

    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")

    after = read_rows(services.reviewed_scans_export(organization=organization, out_dir=tmp_path / "after"))
    assert {row["series"] for row in after} == {f"patient-{kept.pk}"}
