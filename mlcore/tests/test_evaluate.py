import numpy as np
import pytest

from mlcore.evaluate import by_confidence, by_view, expected_calibration_error, score


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


def _leaning_towards_class_0(seed: int = 0, n: int = 400):
    """Probabilities of a model that over-predicts class 0: its scores for the truth are halved."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), y] += 2.0
    logits[:, 0] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities, y


def test_class_offsets_undo_a_lean_towards_one_class_and_raise_macro_f1():
    from mlcore.evaluate import _macro_f1, fit_class_offsets

    probabilities, y = _leaning_towards_class_0()
    offsets = fit_class_offsets(probabilities, y)
    assert offsets[0] == 0.0 and np.all(offsets[1:] > 0.5)  # the others are lifted against class 0
    logits = np.log(probabilities)
    before, after = _macro_f1(y, logits.argmax(1), 4), _macro_f1(y, (logits + offsets).argmax(1), 4)
    assert after > before + 0.05
    # The same shift holds on fresh data from the same model: it corrects the lean, not the noise.
    fresh, y_fresh = _leaning_towards_class_0(seed=1)
    assert _macro_f1(y_fresh, (np.log(fresh) + offsets).argmax(1), 4) > _macro_f1(y_fresh, np.log(fresh).argmax(1), 4)


def test_class_offsets_stay_zero_where_the_decision_is_already_best():
    from mlcore.evaluate import fit_class_offsets

    y = np.array([0, 1, 2, 3] * 10)
    probabilities = np.full((40, 4), 0.1)
    probabilities[np.arange(40), y] = 0.7
    assert np.all(fit_class_offsets(probabilities, y) == 0.0)


def test_macro_f1_matches_the_score_function():
    from mlcore.evaluate import _macro_f1

    probabilities, y = _leaning_towards_class_0(seed=2)
    assert _macro_f1(y, probabilities.argmax(1), 4) == pytest.approx(
        score(y, probabilities, ("a", "b", "c", "d")).macro_f1)


def test_temperature_fitted_after_offsets_keeps_their_decision_and_sharpens_underconfident_scores():
    from mlcore.evaluate import fit_temperature

    probabilities, y = _leaning_towards_class_0(seed=3)
    soft = np.exp(np.log(probabilities) / 3.0)
    soft /= soft.sum(axis=1, keepdims=True)  # right decisions, far too unsure
    assert fit_temperature(soft, y) < 0.6
    offsets = np.array([0.0, 0.5, 0.5, 0.5])
    assert fit_temperature(soft, y, offsets) != pytest.approx(fit_temperature(soft, y))


def test_class_offsets_refuse_more_classes_than_an_exhaustive_search_can_take():
    from mlcore.evaluate import fit_class_offsets

    with pytest.raises(ValueError, match="up to 5 classes"):
        fit_class_offsets(np.full((6, 6), 1 / 6), np.arange(6))


def test_a_series_verdict_is_the_class_of_its_mean_probability():
    from mlcore.evaluate import by_series

    labels = np.array([0, 0, 0, 1, 1])
    # Series "a": two slices say x weakly, one says y strongly, so the mean says y: a misread patient
    # although most of its slices are right.
    probabilities = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0], [0.2, 0.8], [0.4, 0.6]])
    result = by_series(labels, probabilities, ["a", "a", "a", "b", "b"], ("x", "y"))
    rows = {r["series"]: r for r in result["series"]}
    assert rows["a"] == {"series": "a", "label": "x", "slices": 3, "verdict": "y", "slices_right": pytest.approx(2 / 3)}
    assert rows["b"]["verdict"] == "y" and rows["b"]["slices_right"] == 1.0
    assert result["recall"] == {"x": 0.0, "y": 1.0}
    assert result["right"] == {"x": 0, "y": 1}
    assert result["accuracy"] == 0.5


def test_a_class_without_test_series_has_no_series_recall():
    from mlcore.evaluate import by_series

    result = by_series([0, 0], np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "a"], ("x", "y"))
    assert result["recall"] == {"x": 1.0, "y": None}


def test_scores_by_view_keep_axial_and_coronal_slices_apart():
    # Every coronal stone is found and every axial one missed: overall Stone recall (2/4) hides that.
    y_true = [1, 1, 1, 1, 0, 0]
    predicted = [1, 1, 0, 0, 0, 0]
    views = ["coronal", "coronal", "axial", "axial", "axial", "coronal"]
    result = by_view(y_true, np.eye(2)[predicted], views, ["Normal", "Stone"])
    assert result["coronal"]["recall"] == {"Normal": 1.0, "Stone": 1.0}
    assert result["axial"]["recall"] == {"Normal": 1.0, "Stone": 0.0}
    assert result["axial"]["slices"] == 3 and result["axial"]["accuracy"] == pytest.approx(1 / 3)
    assert result["axial"]["slices_per_class"] == {"Normal": 1, "Stone": 2}


def test_a_view_without_a_class_has_no_recall_for_it_and_unset_views_are_unknown():
    result = by_view([0, 0], np.eye(2)[[0, 1]], ["", ""], ["Normal", "Stone"])
    assert set(result) == {"unknown"}
    assert result["unknown"]["recall"] == {"Normal": 0.5, "Stone": None}


def test_results_are_scored_apart_with_and_without_the_uncertain_mark_and_unmarked_misses_named():
    names = ["Normal", "Stone", "Tumor"]
    probabilities = np.array([
        [0.9, 0.05, 0.05],  # Normal, right, sure
        [0.8, 0.1, 0.1],    # a Tumor read as Normal with no mark: the miss a reader is not warned of
        [0.75, 0.2, 0.05],  # a Stone read as Normal, sure
        [0.5, 0.4, 0.1],    # a Stone read as Normal, marked uncertain
        [0.1, 0.2, 0.7],    # Tumor, right, exactly at the threshold: not marked
        [0.3, 0.3, 0.4],    # Tumor, right, marked
    ])
    y_true = [0, 2, 1, 1, 2, 2]

    result = by_confidence(y_true, probabilities, names, 0.7, series=["a", "b", "c", "d", "e", "e"])

    assert result["threshold"] == 0.7
    assert result["confident"] == {"slices": 4, "right": 2}
    assert result["uncertain"] == {"slices": 2, "right": 1}
    assert result["confident_wrong"]["Tumor"] == {"slices": 1, "read_as": {"Normal": 1}, "series": 1}
    assert result["confident_wrong"]["Stone"] == {"slices": 1, "read_as": {"Normal": 1}, "series": 1}
    assert result["confident_wrong"]["Normal"] == {"slices": 0, "read_as": {}, "series": 0}


def test_a_result_flagged_out_of_scope_counts_as_marked_whatever_its_probability():
    names = ["Normal", "Tumor"]
    probabilities = np.array([[0.95, 0.05], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y_true = [0, 1, 1, 0]

    plain = by_confidence(y_true, probabilities, names, 0.7)
    flagged = by_confidence(y_true, probabilities, names, 0.7, out_of_scope=[False, True, False, True])

    assert "out_of_scope" not in plain and plain["confident_wrong"]["Tumor"]["slices"] == 1
    assert flagged["confident"] == {"slices": 2, "right": 2}
    assert flagged["uncertain"] == {"slices": 2, "right": 1}
    assert flagged["out_of_scope"] == {"slices": 2, "right": 1}
    assert flagged["confident_wrong"]["Tumor"] == {"slices": 0, "read_as": {}}  # the flag warned of it
