"""What is plainly not a kidney CT slice must come back flagged, not as one of the four classes."""

import numpy as np
import pytest

from mlcore.inference import Classifier, input_check

from .conftest import synthetic_slice


def _photo(rng):
    image = np.zeros((120, 160, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, 160)[None, :]
    image[..., 1] = 80
    image[..., 2] = rng.integers(0, 255, (120, 160))
    return image


def test_input_check_flags_colour_blank_and_noise_but_not_a_slice():
    rng = np.random.default_rng(0)
    assert "colour" in input_check(_photo(rng))
    assert "blank" in input_check(np.full((64, 64, 1), 128, np.uint8))
    assert "noise" in input_check(rng.integers(0, 255, (64, 64, 1), dtype=np.uint8))
    assert input_check(synthetic_slice("Cyst", rng)[..., None]) == ""
    grey_as_rgb = np.repeat(synthetic_slice("Tumor", rng)[..., None], 3, axis=-1)
    assert input_check(grey_as_rgb) == ""


def test_classifier_marks_out_of_scope_images_with_a_reason(trained_model):
    classifier = Classifier.load(trained_model.model_path)
    rng = np.random.default_rng(1)
    results = classifier.predict([_photo(rng), np.zeros((64, 64, 1), np.uint8)])
    assert all(r.out_of_scope and r.out_of_scope_reason for r in results)


def test_the_model_distance_separates_far_inputs(trained_model):
    classifier = Classifier.load(trained_model.model_path)
    rng = np.random.default_rng(2)
    in_scope = [synthetic_slice(c, rng)[..., None] for c in ("Cyst", "Normal", "Stone", "Tumor")]
    # grey, structured, smooth, yet nothing like the training slices: bright background with dark bars
    far = np.full((64, 64, 1), 230, np.uint8)
    far[10:54:8] = 20
    _, distances = classifier.outputs(in_scope + [far])
    assert distances is not None
    assert distances[-1] > np.median(distances[:-1])
