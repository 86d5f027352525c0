"""Sealed backup files: what is sealed comes back only with its key, its name and every chunk in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kidneyweb import backup_crypto
from kidneyweb.backup_crypto import MAGIC, SealError, SealingWriter, parse_key, unseal_file


@pytest.fixture
def small_chunks(monkeypatch):
    # Several chunks from a few hundred bytes, so that order, loss and truncation can be tested cheaply.
    monkeypatch.setattr(backup_crypto, "CHUNK", 64)
    return 64


@pytest.fixture
def key() -> bytes:
    return parse_key(backup_crypto.generate_key())


def _sealed(tmp_path: Path, data: bytes, key: bytes, name: str = "data.json.gz") -> Path:
    with (tmp_path / "sealed").open("wb") as target, SealingWriter(target, key=key, name=name) as writer:
        for start in range(0, len(data), 50):  # in pieces that do not line up with the chunks
            writer.write(data[start:start + 50])
    return tmp_path / "sealed"


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 1000])
def test_a_sealed_file_unseals_to_what_was_sealed_at_every_chunk_boundary(tmp_path, key, small_chunks, size):
    data = os.urandom(size)
    sealed = _sealed(tmp_path, data, key)

    unseal_file(sealed, tmp_path / "back", key=key, name="data.json.gz")

    assert (tmp_path / "back").read_bytes() == data
    chunks = max(1, -(-size // small_chunks))
    assert sealed.read_bytes().startswith(MAGIC)
    assert sealed.stat().st_size == len(MAGIC) + backup_crypto.PREFIX + size + chunks * backup_crypto.TAG


def test_two_sealings_of_one_file_differ(tmp_path, key):
    data = b"Ada Example, MRN-1" * 100
    first = _sealed(tmp_path, data, key).read_bytes()
    second = _sealed(tmp_path, data, key).read_bytes()

    assert first != second and b"Ada Example" not in first


def test_another_key_or_another_file_name_fails_and_leaves_nothing(tmp_path, key, small_chunks):
    sealed = _sealed(tmp_path, b"x" * 200, key)
    other = parse_key(backup_crypto.generate_key())

    with pytest.raises(SealError, match="fails its authentication"):
        unseal_file(sealed, tmp_path / "back", key=other, name="data.json.gz")
    with pytest.raises(SealError, match="fails its authentication"):
        unseal_file(sealed, tmp_path / "back", key=key, name="media.tar")
    assert not (tmp_path / "back").exists()


@pytest.mark.parametrize("damage", ["flipped byte", "cut at a chunk boundary", "cut inside a chunk",
                                    "chunks swapped", "chunk dropped"])
def test_an_altered_sealed_file_is_refused(tmp_path, key, small_chunks, damage):
    sealed = _sealed(tmp_path, bytes(range(256)) * 2, key)  # 512 bytes: 8 full chunks and an empty last one
    blob = bytearray(sealed.read_bytes())
    header, size = len(MAGIC) + backup_crypto.PREFIX, small_chunks + backup_crypto.TAG
    chunks = [bytes(blob[i:i + size]) for i in range(header, len(blob), size)]
    if damage == "flipped byte":
        blob[header + 5] ^= 1
    elif damage == "cut at a chunk boundary":
        blob = blob[:header + 3 * size]
    elif damage == "cut inside a chunk":
        blob = blob[:-3]
    elif damage == "chunks swapped":
        blob = blob[:header] + b"".join([chunks[1], chunks[0], *chunks[2:]])
    else:
        blob = blob[:header] + b"".join(chunks[:2] + chunks[3:])
    sealed.write_bytes(bytes(blob))

    with pytest.raises(SealError, match="fails its authentication"):
        unseal_file(sealed, tmp_path / "back", key=key, name="data.json.gz")


def test_a_file_that_was_never_sealed_is_named_as_such(tmp_path, key):
    (tmp_path / "plain.tar").write_bytes(b"ustar and more")

    with pytest.raises(SealError, match="plain.tar is not a sealed backup file"):
        unseal_file(tmp_path / "plain.tar", tmp_path / "back", key=key, name="media.tar")


@pytest.mark.parametrize("text", ["", "short", "a" * 44, "!" * 44, "é" * 44])
def test_a_malformed_key_is_refused_with_how_to_make_one(text):
    with pytest.raises(SealError, match="--generate-key"):
        parse_key(text)


def test_a_generated_key_is_32_random_bytes_with_a_stable_fingerprint():
    first, second = backup_crypto.generate_key(), backup_crypto.generate_key()

    assert len(parse_key(first)) == 32 and first != second
    assert backup_crypto.key_id(parse_key(first)) == backup_crypto.key_id(parse_key(first + "\n"))
    assert backup_crypto.key_id(parse_key(first)) != backup_crypto.key_id(parse_key(second))
