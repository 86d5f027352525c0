"""The model the repository ships: small, honest about its scores, robust to how clinicians upload."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.card import own_test_records, read_card
from mlcore.data import data_dir_from_env
from mlcore.images import load_image
from mlcore.dicom import DEFAULT_CT_WINDOW
from mlcore.inference import Classifier, default_model_path
from mlcore.synthetic import dicom_bytes

MODEL = default_model_path()


@pytest.fixture(scope="module")
def shipped():
    if not MODEL.exists():
        pytest.skip(f"shipped model not found at {MODEL}; train it with `python main.py`")
    return Classifier.load(MODEL)


@pytest.fixture(scope="module")
def test_split(shipped):
    data_dir = data_dir_from_env()
    if not data_dir.is_dir():
        pytest.skip(f"real CT slices not found at {data_dir}; set KIDNEY_DATA_DIR")
    return own_test_records(model_path=MODEL, data_dir=data_dir)


def test_shipped_model_is_small_and_carries_a_complete_card(shipped):
    assert MODEL.stat().st_size < 25 * 1024 * 1024
    card = read_card(MODEL)
    assert card.classes == ("Cyst", "Normal", "Stone", "Tumor")
    assert "test_series_split" in card.metrics
    assert card.calibration["temperature"] > 0
    assert card.out_of_scope["distance_threshold"] > 0


def test_recorded_test_scores_are_reproduced_on_the_series_test_split(shipped, test_split):
    sample = test_split[::3]
    results = shipped.predict([r.path for r in sample])
    accuracy = np.mean([res.label == rec.label for res, rec in zip(results, sample)])
    recorded = shipped.card.metrics["test_series_split"]["accuracy"]
    assert accuracy == pytest.approx(recorded, abs=0.06)


def test_full_size_rgb_uploads_get_the_same_label_as_the_slice(shipped, test_split):
    sample = test_split[::12]
    small = shipped.predict([r.path for r in sample])
    large = shipped.predict([np.repeat(np.kron(load_image(r.path), np.ones((2, 2, 1), np.uint8)), 3, axis=-1)
                             for r in sample])
    agreement = np.mean([a.label == b.label for a, b in zip(small, large)])
    assert agreement >= 0.9


def test_real_slices_are_seldom_flagged_out_of_scope(shipped, test_split):
    results = shipped.predict([r.path for r in test_split[::3]])
    assert np.mean([r.out_of_scope for r in results]) <= 0.05


def test_dicom_slices_in_hounsfield_units_get_the_same_label_as_the_exported_slice(shipped, test_split):
    """A scanner's 512 px slice, stored as HU + 1024 without a window: the default abdominal window applies."""
    sample = test_split[::12]
    exported = shipped.predict([r.path for r in sample])
    low, width = DEFAULT_CT_WINDOW[0] - DEFAULT_CT_WINDOW[1] / 2, DEFAULT_CT_WINDOW[1]
    dicoms = []
    for record in sample:
        grey = np.kron(load_image(record.path)[..., 0].astype(float), np.ones((2, 2)))
        hounsfield = grey / 255 * width + low
        dicoms.append(dicom_bytes(np.round(hounsfield + 1024).astype(np.uint16), window=None))
    scanned = shipped.predict([load_image(data) for data in dicoms])
    agreement = np.mean([a.label == b.label for a, b in zip(exported, scanned)])
    assert agreement >= 0.9


def test_the_cards_split_by_the_uncertain_mark_is_what_the_model_does_on_its_test_split(shipped, test_split):
    recorded = shipped.card.metrics["test_series_split"]["by_confidence"]
    results = shipped.predict([r.path for r in test_split])
    threshold = shipped.card.calibration["confidence_threshold"]
    # Marked as the web marks a result for review: uncertain, or out of scope whatever the probability.
    sure = [res.confidence >= threshold and not res.out_of_scope for res in results]
    right = [res.label == rec.label for res, rec in zip(results, test_split)]

    assert recorded["threshold"] == threshold
    assert recorded["confident"] == {"slices": sum(sure), "right": sum(s and r for s, r in zip(sure, right))}
    assert recorded["uncertain"]["slices"] == len(test_split) - sum(sure)
    assert recorded["out_of_scope"]["slices"] == sum(res.out_of_scope for res in results)
