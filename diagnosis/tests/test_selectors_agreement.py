"""How often reviewers agree with the AI, per class the AI said."""

from diagnosis import selectors

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory


def review(organization, ai, said):
    prediction = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), label=ai)
    return ReviewFactory(prediction=prediction, label=said)


def test_agreement_per_ai_class_counts_the_current_review_of_each_scan(organization, other_organization):
    review(organization, "Stone", "Stone")
    review(organization, "Stone", "Stone")
    review(organization, "Stone", "Tumor")
    first = review(organization, "Tumor", "Normal")
    ReviewFactory(prediction=first.prediction, label="Tumor")  # a second look overrules the first
    review(other_organization, "Stone", "Cyst")

    rows = {row.label: row for row in selectors.agreement_by_class(organization=organization, class_names=["Cyst", "Normal", "Stone", "Tumor"])}

    assert list(rows) == ["Cyst", "Normal", "Stone", "Tumor"]
    assert (rows["Stone"].reviewed, rows["Stone"].agreed, rows["Stone"].corrected_to) == (3, 2, {"Tumor": 1})
    assert rows["Stone"].rate == 2 / 3
    assert (rows["Tumor"].reviewed, rows["Tumor"].rate) == (1, 1.0)
    assert (rows["Cyst"].reviewed, rows["Cyst"].rate) == (0, None)


def test_the_summary_lists_every_known_class_and_the_overall_rate(organization):
    review(organization, "Stone", "Stone")
    review(organization, "Cyst", "Normal")

    summary = selectors.agreement_summary(organization=organization)

    assert {row.label for row in summary.classes} == {"Cyst", "Normal", "Stone", "Tumor"}
    assert (summary.reviewed, summary.agreed, summary.rate) == (2, 1, 0.5)


def test_the_summary_has_no_rate_before_any_review(organization):
    summary = selectors.agreement_summary(organization=organization)

    assert (summary.reviewed, summary.rate) == (0, None)


def test_a_reading_of_a_scan_whose_diagnosis_failed_is_no_agreement_or_disagreement(organization):
    review(organization, "Stone", "Stone")
    failed = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), status="failed")
    ReviewFactory(prediction=failed, label="Tumor")

    summary = selectors.agreement_summary(organization=organization)

    assert (summary.reviewed, summary.agreed) == (1, 1)
    assert "" not in {row.label for row in summary.classes}
