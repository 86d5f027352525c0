"""`manage.py backup --reseal`: existing backups encrypted with the current key in place (after the key was
replaced, or ones made without a key), so that an old key can be retired; a backup that cannot be read is left
as it was."""

from __future__ import annotations

import hashlib
import json
import stat
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from diagnosis.models import Patient
from kidneyweb import backup_crypto

from .test_command_backup import _backup, _lose_everything, backup_key, call_command_output, deployment  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def reseal(*folders: Path) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("backup", "--reseal", *map(str, folders), stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def contents(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_a_backup_resealed_with_the_new_key_restores_once_the_old_key_is_forgotten(deployment, tmp_path, settings,
                                                                                   backup_key):
    folder = _backup(tmp_path / "backups")
    before = manifest(folder)
    settings.KIDNEYWEB_BACKUP_KEY = call_command_output("backup", "--generate-key")
    settings.KIDNEYWEB_BACKUP_PREVIOUS_KEYS = [backup_key]

    stdout, stderr = reseal(folder)

    new_id = backup_crypto.key_id(backup_crypto.parse_key(settings.KIDNEYWEB_BACKUP_KEY))
    assert stdout.strip() == f"{folder}: resealed" and new_id in stderr
    after = manifest(folder)
    assert after["encryption"]["key_id"] == new_id != before["encryption"]["key_id"]
    assert (after["created"], after["counts"], after["migrations"]) == (before["created"], before["counts"],
                                                                        before["migrations"])
    assert set(after["files"]) == set(before["files"]) and after["files"] != before["files"] and after["resealed"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {0o600}
    assert [path.name for path in (tmp_path / "backups").iterdir()] == [folder.name]  # nothing left beside it

    settings.KIDNEYWEB_BACKUP_PREVIOUS_KEYS = []
    _lose_everything(deployment)
    call_command("restore", str(folder), stderr=StringIO())
    assert Patient.objects.get().name == "Ada Example"


def test_a_backup_made_without_a_key_is_encrypted_in_place(deployment, tmp_path, settings):
    folder = _backup(tmp_path / "backups")
    assert "data.json.gz" in manifest(folder)["files"]
    settings.KIDNEYWEB_BACKUP_KEY = call_command_output("backup", "--generate-key")

    reseal(folder)

    assert set(manifest(folder)["files"]) == {"data.json.gz.aes", "media.tar.aes", "models.tar.aes"}
    assert not (folder / "data.json.gz").exists()
    settings.KIDNEYWEB_BACKUP_KEY = ""
    with pytest.raises(CommandError, match="set KIDNEYWEB_BACKUP_KEY to the key it was made with"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())
    settings.KIDNEYWEB_BACKUP_KEY = call_command_output("backup", "--generate-key")
    with pytest.raises(CommandError, match="encrypted with another key"):
        call_command("restore", str(folder), "--replace", stdout=StringIO())


def test_a_backup_already_encrypted_with_the_current_key_is_left_untouched(deployment, tmp_path, backup_key):
    folder = _backup(tmp_path / "backups")
    before = contents(folder)

    stdout, _ = reseal(folder)

    assert stdout.strip() == f"{folder}: already encrypted with this key"
    assert contents(folder) == before


def test_backups_that_cannot_be_read_are_left_as_they_were_and_the_others_are_resealed(deployment, tmp_path, settings,
                                                                                      backup_key):
    readable = _backup(tmp_path / "one")
    settings.KIDNEYWEB_BACKUP_KEY = call_command_output("backup", "--generate-key")
    unknown_key = _backup(tmp_path / "two")  # its key will be listed nowhere
    settings.KIDNEYWEB_BACKUP_KEY = backup_key
    altered = _backup(tmp_path / "three")
    # A chunk altered after the checksums were taken (the manifest rewritten to match): found only by decrypting,
    # halfway through the reseal.
    sealed = altered / "media.tar.aes"
    data = bytearray(sealed.read_bytes())
    data[-5] ^= 1
    sealed.write_bytes(bytes(data))
    recorded = manifest(altered)
    recorded["files"]["media.tar.aes"]["sha256"] = hashlib.sha256(data).hexdigest()
    (altered / "manifest.json").write_text(json.dumps(recorded))
    untouched = {folder: contents(folder) for folder in (unknown_key, altered)}
    settings.KIDNEYWEB_BACKUP_KEY = call_command_output("backup", "--generate-key")
    settings.KIDNEYWEB_BACKUP_PREVIOUS_KEYS = [backup_key]

    stdout, stderr = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 of 3 backup\\(s\\) not resealed; they are unchanged"):
        call_command("backup", "--reseal", str(readable), str(unknown_key), str(altered), stdout=stdout,
                     stderr=stderr)

    assert stdout.getvalue().strip() == f"{readable}: resealed"
    assert f"{unknown_key}: The backup is encrypted with another key" in stderr.getvalue()
    assert f"{altered}: media.tar.aes fails its authentication" in stderr.getvalue()
    assert {folder: contents(folder) for folder in untouched} == untouched
    assert sorted(path.name for path in (tmp_path / "three").iterdir()) == [altered.name]  # no half-written copy
    new_id = backup_crypto.key_id(backup_crypto.parse_key(settings.KIDNEYWEB_BACKUP_KEY))
    assert manifest(readable)["encryption"]["key_id"] == new_id


def test_resealing_without_a_current_key_is_refused(deployment, tmp_path, settings):
    folder = _backup(tmp_path / "backups")
    settings.KIDNEYWEB_BACKUP_KEY = ""

    with pytest.raises(CommandError, match="KIDNEYWEB_BACKUP_KEY is not set"):
        reseal(folder)
    assert "data.json.gz" in manifest(folder)["files"]
