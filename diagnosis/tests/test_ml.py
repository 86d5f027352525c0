import pytest

from diagnosis import ml

from .factories import CLASS_NAMES, image_bytes


def test_a_classifier_is_loaded_once_per_process_and_reused(tiny_model_version):
    ml.clear_cache()

    first = ml.get_classifier(tiny_model_version)
    second = ml.get_classifier(tiny_model_version)

    assert first is second
    assert tuple(first.class_names) == tuple(CLASS_NAMES)


def test_classify_returns_a_label_and_probabilities_for_image_bytes(tiny_model_version):
    result = ml.classify(model_version=tiny_model_version, image_bytes=image_bytes("PNG", (50, 70), "RGB"))

    assert result.label in CLASS_NAMES
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_a_missing_model_file_is_a_model_file_error(tiny_model_version):
    tiny_model_version.path = "models/does-not-exist.keras"

    with pytest.raises(ml.ModelFileError, match="missing"):
        ml.get_classifier(tiny_model_version)


def test_paths_inside_the_project_are_stored_relative_to_it(settings):
    inside = settings.BASE_DIR / "models" / "x.keras"

    assert ml.stored_model_path(inside) == "models/x.keras"
    assert ml.resolve_model_path("models/x.keras") == inside


def test_paths_outside_the_project_are_stored_absolute(tmp_path):
    assert ml.stored_model_path(tmp_path / "m.keras") == str((tmp_path / "m.keras").resolve())
