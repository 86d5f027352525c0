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


def test_registering_the_same_file_again_reads_a_changed_card_again(db, copy_model):
    import json

    model = copy_model()
    first = services.model_version_register(path=model)
    card = json.loads(model.with_suffix(".json").read_text())
    card["metrics"]["test_series_split"] = {"by_confidence": {"threshold": 0.7}}  # measured since
    model.with_suffix(".json").write_text(json.dumps(card))

    again = services.model_version_register(path=model)

    assert again.pk == first.pk and ModelVersion.objects.count() == 1
    stored = ModelVersion.objects.get()
    assert stored.card["metrics"]["test_series_split"] == {"by_confidence": {"threshold": 0.7}}
    assert stored.metrics == card["metrics"] and stored.sha256 == first.sha256


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


def test_a_file_that_is_not_a_keras_archive_is_refused_before_it_can_serve(db, copy_model):
    broken = copy_model("broken.keras")
    broken.write_bytes(b"half a download")

    with pytest.raises(ValidationError, match="broken.keras cannot be registered: .*not a Keras model archive"):
        services.model_version_register(path=broken, activate=True)

    assert not ModelVersion.objects.exists()


def test_a_name_over_the_limit_is_refused_and_a_long_card_name_is_shortened(db, copy_model, tiny_model_path):
    with pytest.raises(ValidationError, match="101 characters long; the limit is 100"):
        services.model_version_register(path=tiny_model_path, name="v" * 101)
    services.model_version_register(path=tiny_model_path, name="r" * 100)
    other = copy_model("retrained.keras")
    other.write_bytes(other.read_bytes() + b"\0")

    version = services.model_version_register(path=other, name=None)
    long_named = copy_model("long.keras")
    long_named.write_bytes(long_named.read_bytes() + b"\0\0")
    card = long_named.with_suffix(".json")
    card.write_text(card.read_text().replace('"tiny-resnet"', '"' + "n" * 150 + '"'))

    assert version.name == "tiny-resnet"
    assert services.model_version_register(path=long_named).name == "n" * 100


def test_activating_a_version_deactivates_the_others(db):
    old = ModelVersionFactory(is_active=True)
    new = ModelVersionFactory()

    services.model_version_activate(model_version=new)

    assert list(ModelVersion.objects.filter(is_active=True)) == [new]
    old.refresh_from_db()
    assert not old.is_active


def test_activating_another_version_queues_a_judgement_of_uploads_once_it_commits(
    db, django_capture_on_commit_callbacks
):
    from . import brokerq

    old = ModelVersionFactory(is_active=True)
    brokerq.drain("celery")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.model_version_activate(model_version=ModelVersionFactory())
    with django_capture_on_commit_callbacks(execute=True) as again:
        services.model_version_activate(model_version=ModelVersion.objects.get(is_active=True))  # no change

    assert len(callbacks) == 1 and again == []
    assert [m["task"] for m in brokerq.drain("celery")] == ["diagnosis.tasks.judge_inputs"]
    assert not ModelVersion.objects.get(pk=old.pk).is_active


def test_the_database_refuses_two_active_versions(db):
    ModelVersionFactory(is_active=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersionFactory(is_active=True)
