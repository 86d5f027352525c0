import numpy as np
import pytest

from mlcore.evaluate import expected_calibration_error, score


def test_scores_match_a_hand_computed_confusion_matrix():
    y_true = [0, 0, 1, 1, 2, 2]
    predicted = [0, 1, 1, 1, 2, 0]
    probabilities = np.eye(3)[predicted]
    scores = score(y_true, probabilities, ["a", "b", "c"])
    assert scores.confusion_matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert scores.accuracy == pytest.approx(4 / 6)
    assert scores.per_class["b"]["precision"] == pytest.approx(2 / 3)
    assert scores.per_class["b"]["recall"] == pytest.approx(1.0)
    assert scores.per_class["c"]["recall"] == pytest.approx(0.5)
    expected_f1 = np.mean([0.5, 0.8, 2 / 3])
    assert scores.macro_f1 == pytest.approx(expected_f1)


def test_a_class_never_predicted_has_zero_precision_not_an_error():
    scores = score([0, 1], np.eye(2)[[0, 0]], ["a", "b"])
    assert scores.per_class["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_calibration_error_is_zero_for_confident_correct_and_large_for_confident_wrong():
    y = np.array([0, 1, 0, 1])
    right = np.eye(2)[y]
    wrong = np.eye(2)[1 - y]
    assert expected_calibration_error(right, y) == pytest.approx(0.0)
    assert expected_calibration_error(wrong, y) == pytest.approx(1.0)


def test_series_bootstrap_is_exact_when_every_slice_is_right():
    from mlcore.evaluate import series_bootstrap

    labels = np.array([0, 0, 1, 1, 1])
    probabilities = np.eye(2)[labels]
    intervals = series_bootstrap(labels, probabilities, ["a", "a", "b", "c", "c"], ("x", "y"), rounds=200)
    assert intervals["accuracy"] == [1.0, 1.0]
    assert intervals["macro_f1"] == [1.0, 1.0]


def test_series_bootstrap_interval_spans_the_estimate_and_counts_a_series_once():
    from mlcore.evaluate import score, series_bootstrap

    rng = np.random.default_rng(0)
    # Ten series per class; three series of class 0 are wholly misread as class 1.
    series = [f"s{c}-{k}" for c in range(2) for k in range(10) for _ in range(20)]
    labels = np.array([c for c in range(2) for _ in range(10) for _ in range(20)])
    predicted = labels.copy()
    predicted[:60] = 1
    probabilities = np.eye(2)[predicted] * 0.8 + 0.1 + rng.random((len(labels), 2)) * 0.01
    point = score(labels, probabilities, ("x", "y")).accuracy
    low, high = series_bootstrap(labels, probabilities, series, ("x", "y"))["accuracy"]
    assert low < point < high
    # 200 slices per class but only 10 series: the interval is as wide as ten patients make it.
    assert high - low > 0.15
