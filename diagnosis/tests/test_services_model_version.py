import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from diagnosis import ml, services
from diagnosis.models import ModelVersion

from .factories import CLASS_NAMES, ModelVersionFactory


def test_register_hashes_the_file_and_reads_the_card(db, tiny_model_path):
    version = services.model_version_register(path=tiny_model_path)

    assert version.sha256 == ml.sha256_file(tiny_model_path)
    assert version.class_names == CLASS_NAMES
    assert version.name == "tiny-resnet"
    assert version.card["input_size"] == 32
    assert version.metrics == {"macro_f1": 0.0}
    assert not version.is_active


def test_registering_the_same_file_again_returns_the_same_version(db, tiny_model_path):
    first = services.model_version_register(path=tiny_model_path)

    again = services.model_version_register(path=tiny_model_path, activate=True)

    assert again.pk == first.pk and again.is_active
    assert ModelVersion.objects.count() == 1


def test_a_different_file_with_the_same_card_name_gets_a_distinct_name(db, copy_model, tiny_model_path):
    services.model_version_register(path=tiny_model_path)
    other = copy_model("retrained.keras")
    other.write_bytes(other.read_bytes() + b"\0")  # another file, same card name

    version = services.model_version_register(path=other)

    assert version.name.startswith("tiny-resnet-") and version.name != "tiny-resnet"


def test_an_explicit_name_already_taken_by_another_file_is_refused(db, copy_model, tiny_model_path):
    services.model_version_register(path=tiny_model_path, name="v1")
    other = copy_model("other.keras")
    other.write_bytes(other.read_bytes() + b"\0")

    with pytest.raises(ValidationError, match="already named"):
        services.model_version_register(path=other, name="v1")


def test_a_missing_file_or_card_is_refused(db, copy_model, tmp_path):
    with pytest.raises(ValidationError, match="No model file"):
        services.model_version_register(path=tmp_path / "nothing.keras")
    lonely = copy_model("lonely.keras")
    lonely.with_suffix(".json").unlink()
    with pytest.raises(ValidationError, match="card"):
        services.model_version_register(path=lonely)


def test_activating_a_version_deactivates_the_others(db):
    old = ModelVersionFactory(is_active=True)
    new = ModelVersionFactory()

    services.model_version_activate(model_version=new)

    assert list(ModelVersion.objects.filter(is_active=True)) == [new]
    old.refresh_from_db()
    assert not old.is_active


def test_the_database_refuses_two_active_versions(db):
    ModelVersionFactory(is_active=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersionFactory(is_active=True)
