"""`manage.py backup` and `restore`: the database, the stored scans and heat maps and the trained models
come back as they were, ids included, into this database or into another engine's."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from diagnosis import services
from diagnosis.models import ApiToken, Patient, PatientAccess, Prediction, Review, Scan
from kidneyweb import backup_crypto

from .factories import PASSWORD, DonePredictionFactory, MembershipFactory, PatientFactory, ReviewFactory, ScanFactory
from .subprocess_env import clean_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deployment(tmp_path, settings):
    """An organization with a member and token, two patients, scans with images and a heat map, a review,
    an access-log entry and a trained model file."""
    settings.KIDNEYWEB_MODELS_DIR = tmp_path / "models"
    (tmp_path / "models" / "run-7").mkdir(parents=True)
    (tmp_path / "models" / "run-7" / "model.keras").write_bytes(b"trained weights")
    membership = MembershipFactory(user__username="dr.lee")
    member = membership.user
    patient = PatientFactory(organization=membership.organization, name="Ada Example", mrn="MRN-1")
    scans = [ScanFactory(patient=patient, uploaded_by=member) for _ in range(2)]
    prediction = DonePredictionFactory(scan=scans[0], label="Tumor")
    prediction.heatmap.save("heat.png", ContentFile(b"\x89PNG heat"), save=True)
    ReviewFactory(scan=scans[0], prediction=prediction, label="Tumor", reviewed_by=member)
    services.patient_access_record(user=member, patient=patient, what="scan", channel="web", scan=scans[0])
    token = services.api_token_rotate(user=member)
    return {"member": member, "patient": patient, "scans": scans, "prediction": prediction, "token": token}


def _backup(out_dir: Path) -> Path:
    stdout = StringIO()
    call_command("backup", str(out_dir), stdout=stdout, stderr=StringIO())
    return Path(stdout.getvalue().strip().splitlines()[-1])


def _stored(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def _lose_everything(deployment) -> list[str]:
    """A disaster: the files and rows gone (the schema stays, as after `migrate` on a new server)."""
    names = [scan.image.name for scan in deployment["scans"]] + [deployment["prediction"].heatmap.name]
    for name in names:
        default_storage.delete(name)
    call_command("flush", interactive=False, verbosity=0)
    (Path(settings.KIDNEYWEB_MODELS_DIR) / "run-7" / "model.keras").unlink()
    return names


def _token_works(token: str) -> bool:
    # Only the token's digest is stored: the one a hospital system holds must open the API again.
    from django.test import Client

    restored = ApiToken.objects.get()
    return (restored.digest == ApiToken.digest_of(token)
            and Client().get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200)


def test_a_restore_brings_back_rows_with_their_ids_files_tokens_and_models(deployment, tmp_path):
    images = {scan.image.name: _stored(scan.image.name) for scan in deployment["scans"]}
    folder = _backup(tmp_path / "backups")
    names = _lose_everything(deployment)
    assert not Patient.objects.exists() and not default_storage.exists(names[0])

    stderr = StringIO()
    call_command("restore", str(folder), stderr=stderr)

    assert "Restored 1 Organization, 1 User, 1 Patient, 2 Scan, 1 Prediction, 1 Review" in stderr.getvalue()
    patient = Patient.objects.get()
    assert (patient.pk, patient.name, patient.mrn) == (deployment["patient"].pk, "Ada Example", "MRN-1")
    assert sorted(Scan.objects.values_list("pk", flat=True)) == sorted(s.pk for s in deployment["scans"])
    for name, data in images.items():
        assert _stored(name) == data
    assert _stored(Prediction.objects.get().heatmap.name) == b"\x89PNG heat"
    assert Review.objects.get().label == "Tumor" and PatientAccess.objects.count() == 1
    assert _token_works(deployment["token"])
    member = get_user_model().objects.get(username="dr.lee")
    assert member.check_password(PASSWORD)
    assert (Path(settings.KIDNEYWEB_MODELS_DIR) / "run-7" / "model.keras").read_bytes() == b"trained weights"


def test_a_restore_leaves_the_database_with_statistics_of_the_rows_it_loaded(deployment, tmp_path):
    from django.db import connection

    folder = _backup(tmp_path / "backups")
    _lose_everything(deployment)

    call_command("restore", str(folder), stderr=StringIO())

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'diagnosis_scan'")
        else:
            cursor.execute("SELECT CAST(stat AS INTEGER) FROM sqlite_stat1 WHERE tbl = 'diagnosis_scan' LIMIT 1")
        assert cursor.fetchone()[0] == 2  # the two scans restored, as the planner will count them


def test_the_backup_is_readable_by_its_owner_only_and_lists_its_checksums(deployment, tmp_path):
    folder = _backup(tmp_path / "backups")

    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"data.json.gz", "media.tar", "models.tar"}
    for name in manifest["files"]:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert manifest["counts"]["diagnosis.Scan"] == 2 and manifest["missing_files"] == []
    assert "diagnosis.0021_access_fhir_export" in manifest["migrations"]


def test_a_file_the_database_names_but_the_storage_lost_is_reported(deployment, tmp_path):
    lost = deployment["scans"][1].image.name
    default_storage.delete(lost)
    stderr = StringIO()

    call_command("backup", str(tmp_path / "backups"), stdout=StringIO(), stderr=stderr)

    assert "1 stored file(s) the database names were missing already" in stderr.getvalue()
    folder = next((tmp_path / "backups").iterdir())
    assert json.loads((folder / "manifest.json").read_text())["missing_files"] == [lost]


def test_a_restore_over_a_database_in_use_is_refused_unless_replacing(deployment, tmp_path):
    folder = _backup(tmp_path / "backups")
    PatientFactory(organization=deployment["patient"].organization, name="Admitted Since")

    with pytest.raises(CommandError, match=r"already holds 1 user\(s\) and 2 patient\(s\)"):
        call_command("restore", str(folder), stdout=StringIO())
    assert Patient.objects.filter(name="Admitted Since").exists()

    call_command("restore", str(folder), "--replace", stdout=StringIO())
    assert list(Patient.objects.values_list("name", flat=True)) == ["Ada Example"]


def test_a_damaged_or_incomplete_backup_is_refused_before_anything_changes(deployment, tmp_path):
    folder = _backup(tmp_path / "backups")
    data = folder / "data.json.gz"
    intact = data.read_bytes()
    data.write_bytes(intact[:-10])

    with pytest.raises(CommandError, match="data.json.gz differs from the checksum"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())
    data.write_bytes(intact)
    (folder / "media.tar").unlink()
    with pytest.raises(CommandError, match="lacks media.tar"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())
    with pytest.raises(CommandError, match="not a kidneyweb backup"):
        call_command("restore", str(tmp_path), stdout=StringIO())
    assert Patient.objects.get().name == "Ada Example"


def test_a_backup_from_a_newer_version_is_refused_until_the_database_is_migrated(deployment, tmp_path):
    folder = _backup(tmp_path / "backups")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["migrations"].append("diagnosis.0099_from_the_future")
    (folder / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(CommandError, match=r"lacks migrations the backup was made with \(diagnosis.0099_from_the_future\)"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())


def _manage_binary(args: list[str], env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, input=stdin,
                          capture_output=True, timeout=300)


def test_a_backup_moves_between_database_engines_and_back_as_a_tar_stream(deployment, tmp_path):
    """Into a new SQLite deployment in another process (`restore -` reading the tar on standard input),
    backed up there (`backup -` writing one), and restored here again."""
    folder = _backup(tmp_path / "backups")
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as archive:
        archive.add(folder, arcname=folder.name)
    other = tmp_path / "other"
    env = clean_env(other, DATABASE_URL=f"sqlite:///{other / 'db.sqlite3'}", SECRET_KEY="x" * 50,
                    KIDNEYWEB_MEDIA_ROOT=str(other / "media"))
    for args, stdin in ((["migrate", "--no-input", "-v", "0"], b""), (["restore", "-"], stream.getvalue())):
        done = _manage_binary(args, env, stdin)
        assert done.returncode == 0, done.stderr.decode()
    with sqlite3.connect(other / "db.sqlite3") as db:
        assert db.execute("select id, name from diagnosis_patient").fetchall() == [(deployment["patient"].pk, "Ada Example")]
    assert (other / "media" / deployment["scans"][0].image.name).read_bytes() == _stored(deployment["scans"][0].image.name)

    again = _manage_binary(["backup", "-"], env)

    assert again.returncode == 0, again.stderr.decode()
    assert b"Backed up 1 Organization" in again.stderr
    with tarfile.open(fileobj=io.BytesIO(again.stdout)) as archive:
        archive.extractall(tmp_path / "received", filter="data")
    [received] = (tmp_path / "received").iterdir()
    _lose_everything(deployment)
    call_command("restore", str(received), stderr=StringIO())
    assert Patient.objects.get().pk == deployment["patient"].pk
    assert Scan.objects.count() == 2 and _stored(deployment["prediction"].heatmap.name) == b"\x89PNG heat"
    # The ids go on after the restored ones (PostgreSQL's sequences are set past them).
    assert ScanFactory(patient=Patient.objects.get()).pk > max(s.pk for s in deployment["scans"])


def test_a_stream_that_is_no_backup_is_refused(tmp_path):
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", SECRET_KEY="x" * 50)

    done = _manage_binary(["restore", "-"], env, b"not a tar at all")

    assert done.returncode == 1 and b"Standard input is not a backup's tar stream" in done.stderr


def test_with_scans_in_s3_the_backup_says_the_bucket_keeps_them(deployment, tmp_path, settings):
    folder = _backup(tmp_path / "local")
    settings.AWS_STORAGE_BUCKET_NAME = "hospital-scans"
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"bucket_name": "hospital-scans"}}}

    s3_folder = _backup(tmp_path / "s3")

    manifest = json.loads((s3_folder / "manifest.json").read_text())
    assert "media.tar" not in manifest["files"]
    assert manifest["media"].startswith("not included: the scans are in the S3 bucket 'hospital-scans'")
    with pytest.raises(CommandError, match="stores them in S3"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())
    assert Patient.objects.get().name == "Ada Example"


@pytest.fixture
def backup_key(settings) -> str:
    settings.KIDNEYWEB_BACKUP_KEY = call_command_output("backup", "--generate-key")
    return settings.KIDNEYWEB_BACKUP_KEY


def call_command_output(*args: str) -> str:
    stdout = StringIO()
    call_command(*args, stdout=stdout, stderr=StringIO())
    return stdout.getvalue().strip()


def test_with_a_key_every_file_but_the_manifest_is_encrypted_and_restores_with_that_key(deployment, tmp_path,
                                                                                       backup_key):
    images = {scan.image.name: _stored(scan.image.name) for scan in deployment["scans"]}
    stderr = StringIO()
    call_command("backup", str(tmp_path / "backups"), stdout=StringIO(), stderr=stderr)
    folder = next((tmp_path / "backups").iterdir())

    assert "Not encrypted" not in stderr.getvalue()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"data.json.gz.aes", "media.tar.aes", "models.tar.aes"}
    assert manifest["encryption"]["key_id"] == backup_crypto.key_id(backup_crypto.parse_key(backup_key))
    for name in manifest["files"]:
        sealed = (folder / name).read_bytes()
        assert sealed.startswith(backup_crypto.MAGIC) and stat.S_IMODE((folder / name).stat().st_mode) == 0o600
        assert b"trained weights" not in sealed and not any(image[:64] in sealed for image in images.values())
    assert "Ada Example" not in (folder / "manifest.json").read_text()

    _lose_everything(deployment)
    call_command("restore", str(folder), stderr=StringIO())

    assert Patient.objects.get().name == "Ada Example" and _token_works(deployment["token"])
    for name, data in images.items():
        assert _stored(name) == data
    assert (Path(settings.KIDNEYWEB_MODELS_DIR) / "run-7" / "model.keras").read_bytes() == b"trained weights"


def test_an_encrypted_backup_without_its_key_or_altered_is_refused_before_anything_changes(deployment, tmp_path,
                                                                                          settings, backup_key):
    folder = _backup(tmp_path / "backups")
    PatientFactory(organization=deployment["patient"].organization, name="Admitted Since")
    key_id = json.loads((folder / "manifest.json").read_text())["encryption"]["key_id"]

    settings.KIDNEYWEB_BACKUP_KEY = ""
    with pytest.raises(CommandError, match=f"encrypted \\(key id {key_id}\\): set KIDNEYWEB_BACKUP_KEY"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())
    settings.KIDNEYWEB_BACKUP_KEY = call_command_output("backup", "--generate-key")
    with pytest.raises(CommandError, match=f"encrypted with another key \\(key id {key_id};"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())
    settings.KIDNEYWEB_BACKUP_KEY = "not a key"
    with pytest.raises(CommandError, match="is not a backup key: make one with `manage.py backup --generate-key`"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())

    # Altered by someone who also rewrote the checksum: only the encryption's authentication can tell.
    settings.KIDNEYWEB_BACKUP_KEY = backup_key
    media = folder / "media.tar.aes"
    blob = bytearray(media.read_bytes())
    blob[-1] ^= 1
    media.write_bytes(bytes(blob))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["media.tar.aes"]["sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="media.tar.aes fails its authentication"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())

    assert sorted(Patient.objects.values_list("name", flat=True)) == ["Ada Example", "Admitted Since"]


def test_an_unencrypted_backup_says_so_and_a_malformed_key_makes_none(deployment, tmp_path, settings):
    stderr = StringIO()
    call_command("backup", str(tmp_path / "plain"), stdout=StringIO(), stderr=stderr)
    assert "Not encrypted: KIDNEYWEB_BACKUP_KEY is not set" in stderr.getvalue()

    settings.KIDNEYWEB_BACKUP_KEY = "typed-by-hand"
    with pytest.raises(CommandError, match="is not a backup key"):
        call_command("backup", str(tmp_path / "refused"), stdout=StringIO(), stderr=StringIO())
    assert not (tmp_path / "refused").exists()


def test_an_encrypted_backup_streams_out_of_one_process_and_into_another(deployment, tmp_path, backup_key):
    """`backup -` and `restore -` as in the containers, with the key in each process's environment."""
    other = tmp_path / "other"
    env = clean_env(other, DATABASE_URL=f"sqlite:///{other / 'db.sqlite3'}", SECRET_KEY="x" * 50,
                    KIDNEYWEB_MEDIA_ROOT=str(other / "media"), KIDNEYWEB_BACKUP_KEY=backup_key)
    stream = io.BytesIO()
    folder = _backup(tmp_path / "backups")
    with tarfile.open(fileobj=stream, mode="w") as archive:
        archive.add(folder, arcname=folder.name)

    for args, stdin in ((["migrate", "--no-input", "-v", "0"], b""), (["restore", "-"], stream.getvalue())):
        done = _manage_binary(args, env, stdin)
        assert done.returncode == 0, done.stderr.decode()
    again = _manage_binary(["backup", "-"], env)

    assert again.returncode == 0 and b"Not encrypted" not in again.stderr, again.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(again.stdout)) as archive:
        names = sorted(Path(name).name for name in archive.getnames())
    assert "data.json.gz.aes" in names and "data.json.gz" not in names
    without_key = _manage_binary(["restore", "--replace", "-"], {**env, "KIDNEYWEB_BACKUP_KEY": ""}, again.stdout)
    assert without_key.returncode == 1 and b"set KIDNEYWEB_BACKUP_KEY to the key it was made with" in without_key.stderr


def test_after_the_key_is_replaced_older_backups_restore_with_the_previous_key_listed(deployment, tmp_path, settings,
                                                                                     backup_key):
    old_backup = _backup(tmp_path / "backups")
    settings.KIDNEYWEB_BACKUP_KEY = call_command_output("backup", "--generate-key")
    new_backup = _backup(tmp_path / "backups-new")
    assert (json.loads((new_backup / "manifest.json").read_text())["encryption"]["key_id"]
            != json.loads((old_backup / "manifest.json").read_text())["encryption"]["key_id"])

    with pytest.raises(CommandError, match="add to KIDNEYWEB_BACKUP_PREVIOUS_KEYS"):
        call_command("restore", str(old_backup), "--replace", stdout=StringIO())
    settings.KIDNEYWEB_BACKUP_PREVIOUS_KEYS = ["not-a-key"]
    with pytest.raises(CommandError, match="Entry 1 of KIDNEYWEB_BACKUP_PREVIOUS_KEYS is not a backup key"):
        call_command("restore", str(old_backup), "--replace", stdout=StringIO())
    settings.KIDNEYWEB_BACKUP_PREVIOUS_KEYS = [backup_key]
    for folder in (old_backup, new_backup):
        _lose_everything(deployment)
        call_command("restore", str(folder), stderr=StringIO())
        assert Patient.objects.get().name == "Ada Example"


def test_mlflows_records_of_the_trainings_are_backed_up_consistently_and_restored(deployment, tmp_path, settings,
                                                                                  monkeypatch):
    import mlflow

    from mlcore.tracking import tracked_run

    monkeypatch.chdir(tmp_path)  # MLflow's default store: ./mlruns of the worker's working directory
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings.KIDNEYWEB_MLRUNS_DIR = tmp_path / "mlruns"
    (tmp_path / "curve.png").write_bytes(b"\x89PNG curve")
    with tracked_run("run-7") as tracker:
        tracker.log_params({"epochs": 20})
        tracker.log_metrics({"val_macro_f1": 0.77}, step=16)
        tracker.log_artifact(tmp_path / "curve.png", "plots")
    run_id = tracker.run_id

    folder = _backup(tmp_path / "backups")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["mlflow"] == "included" and "mlruns.tar" in manifest["files"]
    with tarfile.open(folder / "mlruns.tar") as archive:  # a consistent copy of the SQLite store, no journal
        names = archive.getnames()
    assert "mlflow.db" in names and not any(name.endswith(("-journal", "-wal")) for name in names)

    _lose_everything(deployment)
    shutil.rmtree(tmp_path / "mlruns")
    call_command("restore", str(folder), stderr=StringIO())

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    restored = mlflow.get_run(run_id)
    assert restored.data.params["epochs"] == "20" and restored.data.metrics["val_macro_f1"] == 0.77
    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots/curve.png",
                                                         dst_path=str(tmp_path / "downloaded")))
    assert artifacts.read_bytes() == b"\x89PNG curve"


def test_records_kept_by_an_mlflow_server_are_named_and_not_copied(deployment, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:pw@mlflow.hospital.example")

    folder = _backup(tmp_path / "backups")

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["mlflow"] == ("not included: MLflow's tracking server (mlflow.hospital.example) keeps the training "
                                  "records")
    assert "mlruns.tar" not in manifest["files"]
