"""The promotion gate's rule on its own: labels and probabilities in, verdict out."""

import pytest

from training.gate import GateError, judge, side_scores

from .factories import CLASS_NAMES, probabilities_with_recall

LABELS = [name for name in CLASS_NAMES for _ in range(50)]


def scores(**recall):
    return side_scores(labels=LABELS, class_names=CLASS_NAMES,
                       probabilities=probabilities_with_recall(LABELS, recall))


def test_side_scores_measure_macro_f1_recall_and_calibration():
    result = scores(Stone=0.5)

    assert result["images"] == 200
    assert result["recall"] == {"Cyst": 1.0, "Normal": 1.0, "Stone": 0.5, "Tumor": 1.0}
    assert result["accuracy"] == pytest.approx(175 / 200)
    assert 0 < result["macro_f1"] < 1
    # Confidence 0.85 everywhere, right 87.5% of the time.
    assert result["expected_calibration_error"] == pytest.approx(0.025)


def test_a_candidate_as_good_as_the_active_model_passes():
    verdict = judge(candidate=scores(), baseline=scores(), margin=0.02)

    assert verdict["passed"] and not verdict["reasons"]
    assert {c["metric"] for c in verdict["checks"]} == {"macro_f1", *(f"recall_{n}" for n in CLASS_NAMES)}


def test_a_candidate_worse_within_the_margin_passes():
    # 49 of 50 Stones: recall 0.98, exactly the margin below 1.0.
    verdict = judge(candidate=scores(Stone=0.98), baseline=scores(), margin=0.02)

    assert verdict["passed"], verdict["reasons"]


def test_one_class_recall_worse_than_the_margin_fails_even_with_better_macro_f1():
    baseline = scores(Cyst=0.6, Normal=0.6, Tumor=0.6)
    candidate = scores(Stone=0.9)

    verdict = judge(candidate=candidate, baseline=baseline, margin=0.02)

    assert candidate["macro_f1"] > baseline["macro_f1"]
    assert not verdict["passed"]
    assert len(verdict["reasons"]) == 1 and "recall of Stone" in verdict["reasons"][0]


def test_worse_macro_f1_fails_and_says_by_how_much():
    verdict = judge(candidate=scores(Cyst=0.9, Normal=0.9), baseline=scores(), margin=0.02)

    assert not verdict["passed"]
    assert any("macro-F1" in reason for reason in verdict["reasons"])
    assert any("0.020 margin" in reason for reason in verdict["reasons"])


def test_a_wider_margin_lets_the_same_candidate_through():
    candidate, baseline = scores(Stone=0.9), scores()

    assert not judge(candidate=candidate, baseline=baseline, margin=0.02)["passed"]
    assert judge(candidate=candidate, baseline=baseline, margin=0.1)["passed"]


def test_calibration_is_shown_but_does_not_decide():
    verdict = judge(candidate=scores(), baseline=scores(), margin=0.0)

    assert set(verdict["calibration"]) == {"candidate", "baseline", "delta"}
    assert verdict["passed"]


def test_with_no_active_model_any_evaluated_candidate_passes():
    assert judge(candidate=scores(Stone=0.1), baseline=None, margin=0.02, has_active=False)["passed"]


def test_an_unevaluated_model_never_passes():
    assert not judge(candidate=None, baseline=scores(), margin=0.02)["passed"]
    verdict = judge(candidate=scores(), baseline=None, margin=0.02, has_active=True)
    assert not verdict["passed"] and "not been evaluated" in verdict["reasons"][0]


def test_models_with_different_classes_are_not_compared():
    three = ["Cyst", "Normal", "Tumor"]
    labels = [name for name in three for _ in range(10)]
    candidate = side_scores(labels=labels, class_names=three,
                            probabilities=[[1.0 if n == label else 0.0 for n in three] for label in labels])
    baseline = side_scores(labels=labels, class_names=CLASS_NAMES,
                           probabilities=[[1.0 if n == label else 0.0 for n in CLASS_NAMES] for label in labels])

    verdict = judge(candidate=candidate, baseline=baseline, margin=0.02)

    assert not verdict["passed"] and "different classes" in verdict["reasons"][0]


def test_left_out_images_are_not_scored():
    probabilities = probabilities_with_recall(LABELS, {"Stone": 0.5})
    stones_wrong = [i for i, label in enumerate(LABELS) if label == "Stone"][25:]
    include = [i for i in range(len(LABELS)) if i not in stones_wrong]

    result = side_scores(labels=LABELS, class_names=CLASS_NAMES, probabilities=probabilities, include=include)

    assert result["images"] == 175 and result["recall"]["Stone"] == 1.0


def test_a_label_the_model_does_not_know_is_an_error():
    with pytest.raises(GateError, match="no class Stone"):
        side_scores(labels=["Stone"], class_names=["Cyst", "Normal"], probabilities=[[0.5, 0.5]])
