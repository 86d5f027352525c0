"""`manage.py backup OUT_DIR --keep-days N`: after the new backup, those made more than N days ago are deleted (a
backup holds patient data, erased patients' included), the newer ones and the new one stay, and a folder whose
age cannot be read is left alone and named."""

from __future__ import annotations

import datetime
import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from .factories import PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _backup(out_dir: Path, *args: str) -> tuple[Path, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("backup", str(out_dir), *args, stdout=stdout, stderr=stderr)
    return Path(stdout.getvalue().strip().splitlines()[-1]), stderr.getvalue()


def _aged(backup: Path, name: str, days: int) -> Path:
    copy = backup.with_name(name)
    shutil.copytree(backup, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["created"] = (timezone.now() - datetime.timedelta(days=days)).isoformat()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_backups_older_than_the_retention_are_deleted_and_the_rest_stay(tmp_path):
    PatientFactory()
    first, _ = _backup(tmp_path)
    old = _aged(first, "kidneyweb-backup-20261001-020000", days=40)
    recent = _aged(first, "kidneyweb-backup-20261125-020000", days=10)
    (tmp_path / "kidneyweb-backup-by-hand").mkdir()
    (tmp_path / "notes.txt").write_text("not a backup")
    shutil.rmtree(first)

    new, said = _backup(tmp_path, "--keep-days", "30")

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [recent.name, new.name, "kidneyweb-backup-by-hand", "notes.txt"])
    assert f"Deleted {old.name}: older than 30 days." in said
    assert "Left kidneyweb-backup-by-hand alone" in said


def test_a_retention_without_a_folder_or_under_a_day_is_refused_before_anything_is_made(tmp_path):
    with pytest.raises(CommandError, match="at least one day"):
        _backup(tmp_path, "--keep-days", "0")

    assert list(tmp_path.iterdir()) == []
