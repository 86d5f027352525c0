"""How well a model version did on the test patients of its card: what a clinician weighs an AI label with, and
the whole card as a clinician reads it before leaning on the model."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import ModelVersion
from .records import confidence_threshold


@dataclass(frozen=True)
class ClassReliability:
    name: str
    found: float  # recall: the share of this class's test slices the model labelled so
    right: float  # precision: the share of the model's calls of this class that were right
    slices: int  # the test slices of this class
    patients_right: int | None = None  # test patients of this class whose slices' mean probability named it
    patients: int | None = None  # test patients (series) of this class


@dataclass(frozen=True)
class Reliability:
    patients: int | None  # test series (patients), when the card counts them
    slices: int
    classes: list[ClassReliability]

    @property
    def by_patient(self) -> bool:
        """Whether the card counts, per class, the test patients read right."""
        return any(c.patients for c in self.classes)


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if 0.0 <= number <= 1.0 else None


def _series_split(model_version: ModelVersion) -> dict:
    """The scores the version's card records on its series test split (patients none of its training saw)."""
    split = ((model_version.card or {}).get("metrics") or {}).get("test_series_split")
    return split if isinstance(split, dict) else {}


def card_accuracy(*, model_version: ModelVersion) -> float | None:
    """The version's accuracy on its card's series test split; None when the card records none."""
    return _number(_series_split(model_version).get("accuracy"))


def card_out_of_scope_share(*, model_version: ModelVersion) -> float | None:
    """The share of slices like its training data that the version finds out of scope: what its card's distance
    threshold leaves out of the validation slices it was set on. None when the card does not say."""
    quantile = _number(((model_version.card or {}).get("out_of_scope") or {}).get("quantile_of_validation"))
    return None if quantile is None else 1.0 - quantile


def model_reliability(*, model_version: ModelVersion) -> Reliability | None:
    """Per class, the recall and precision the version's card records on its series test split (patients
    none of its training saw); None when the card records none (a version registered without one)."""
    split = _series_split(model_version)
    per_class = split.get("per_class") or {}
    by_series = split.get("by_series") or {}
    right = by_series.get("right") or {}
    series_of: dict[str, int] = {}
    for entry in by_series.get("series") or []:
        if isinstance(entry, dict) and isinstance(entry.get("label"), str):
            series_of[entry["label"]] = series_of.get(entry["label"], 0) + 1
    classes = []
    for name in model_version.class_names or per_class:
        scores = per_class.get(name) or {}
        found, precision = _number(scores.get("recall")), _number(scores.get("precision"))
        if found is None or precision is None:
            return None
        patients = series_of.get(name)
        patients_right = right.get(name) if isinstance(right.get(name), int) and patients else None
        classes.append(ClassReliability(name=name, found=found, right=precision, slices=int(scores.get("support") or 0),
                                        patients_right=patients_right, patients=patients if patients_right is not None else None))
    if not classes:
        return None
    patients = split.get("series")
    return Reliability(patients=patients if isinstance(patients, int) else None,
                       slices=sum(c.slices for c in classes), classes=classes)


def label_reliability_text(*, model_version: ModelVersion, label: str) -> str:
    """One sentence for a report: how often the version's labels of this class were right in testing; ""
    when its card does not say."""
    tested = model_reliability(model_version=model_version)
    row = next((c for c in tested.classes if c.name == label), None) if tested else None
    if row is None:
        return ""
    return (f"{row.right:.0%} of the model's {row.name} labels were right; it labelled {row.found:.0%} of "
            f"{row.name} slices so (test patients none of its training saw)")


# --- The model's card as clinicians read it ------------------------------------------------------------------------

# Below these a class or a kind of slice is named among the limitations: one in five or more wrong.
WEAK_SHARE = 0.8
WEAK_VIEW_ACCURACY = 0.7


@dataclass(frozen=True)
class Score:
    value: float
    interval: tuple[float, float] | None = None  # 95%, bootstrapped over test patients


@dataclass(frozen=True)
class ViewScore:
    view: str  # axial or coronal
    slices: int
    accuracy: float


@dataclass(frozen=True)
class UnmarkedMiss:
    """Test slices of a class the version read as another with no uncertain mark to warn of it."""

    name: str  # the true class
    slices: int
    patients: int | None
    read_as: dict[str, int]


@dataclass(frozen=True)
class ConfidenceSplit:
    """How often the version's results on its test patients were right as shown (no uncertain mark) and when
    marked uncertain: how far a reader may lean on an unmarked result."""

    threshold: float
    confident: int
    confident_right: int
    uncertain: int
    uncertain_right: int
    misses: list[UnmarkedMiss]  # per true class with any, most slices first
    # Of the uncertain, those marked for being out of scope (whatever their probability); None when the card counted
    # only the probability, as cards measured before this did.
    out_of_scope: int | None = None

    @property
    def slices(self) -> int:
        return self.confident + self.uncertain

    @property
    def confident_share(self) -> float | None:
        return self.confident_right / self.confident if self.confident else None

    @property
    def uncertain_share(self) -> float | None:
        return self.uncertain_right / self.uncertain if self.uncertain else None


def _part(value: object) -> tuple[int, int] | None:
    if isinstance(value, dict) and isinstance(value.get("slices"), int) and isinstance(value.get("right"), int):
        if 0 <= value["right"] <= value["slices"]:
            return value["slices"], value["right"]
    return None


def _confidence_split(split: dict, threshold: float) -> ConfidenceSplit | None:
    """The card's by_confidence, when it was measured at the threshold results are marked with here (a card without
    it, or measured at another threshold, says nothing about what readers are shown)."""
    recorded = split.get("by_confidence")
    if not isinstance(recorded, dict):
        return None
    try:
        measured_at = float(recorded.get("threshold"))
    except (TypeError, ValueError):
        return None
    confident, uncertain = _part(recorded.get("confident")), _part(recorded.get("uncertain"))
    if confident is None or uncertain is None or abs(measured_at - threshold) > 1e-9:
        return None
    misses = []
    for name, miss in (recorded.get("confident_wrong") or {}).items():
        if isinstance(miss, dict) and isinstance(miss.get("slices"), int) and miss["slices"] > 0:
            patients = miss.get("series")
            misses.append(UnmarkedMiss(name=str(name), slices=miss["slices"],
                                       patients=patients if isinstance(patients, int) else None,
                                       read_as=_counts(miss.get("read_as"))))
    misses.sort(key=lambda miss: (-miss.slices, miss.name))
    flagged = _part(recorded.get("out_of_scope"))
    return ConfidenceSplit(threshold=measured_at, confident=confident[0], confident_right=confident[1],
                           uncertain=uncertain[0], uncertain_right=uncertain[1], misses=misses,
                           out_of_scope=flagged[0] if flagged is not None and flagged[0] <= uncertain[0] else None)


@dataclass(frozen=True)
class ModelCardView:
    """What a clinician should know before leaning on a model version: its label, read from its card."""

    model_version: ModelVersion
    intended_use: str
    reliability: Reliability | None
    recall_intervals: dict[str, tuple[float, float]]
    accuracy: Score | None
    macro_f1: Score | None
    patients_accuracy: float | None  # test patients whose slices' mean probability named their class
    views: list[ViewScore]
    threshold: float
    confidence: ConfidenceSplit | None
    calibration_method: str
    calibration_error: float | None
    out_of_scope_method: str
    source: str
    images: int | None
    images_per_class: dict[str, int]
    series_per_split: dict[str, int]
    split_method: str
    random_split_accuracy: float | None
    limitations: list[str]


def _interval(value: object) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = _number(value[0]), _number(value[1])
        if low is not None and high is not None:
            return low, high
    return None


def _score(split: dict, key: str) -> Score | None:
    value = _number(split.get(key))
    return Score(value, _interval((split.get("intervals_95") or {}).get(key))) if value is not None else None


def _counts(value: object) -> dict[str, int]:
    return {str(k): v for k, v in value.items() if isinstance(v, int)} if isinstance(value, dict) else {}


def model_card_view(*, model_version: ModelVersion) -> ModelCardView:
    """The version's card, read defensively: a version registered without a card, or with an older one, shows
    what it has."""
    card = model_version.card or {}
    metrics = card.get("metrics") or {}
    split = _series_split(model_version)
    intervals = split.get("intervals_95") or {}
    recall_intervals = {name: interval for name in model_version.class_names
                        if (interval := _interval(intervals.get(f"recall_{name}"))) is not None}
    views = [ViewScore(view=str(view), slices=scores["slices"], accuracy=accuracy)
             for view, scores in sorted((split.get("by_view") or {}).items())
             if isinstance(scores, dict) and isinstance(scores.get("slices"), int)
             and (accuracy := _number(scores.get("accuracy"))) is not None]
    calibration = card.get("calibration") or {}
    data = card.get("data") or {}
    reliability = model_reliability(model_version=model_version)
    threshold = confidence_threshold(model_version)

    limitations = []
    for row in reliability.classes if reliability else []:
        if row.found < WEAK_SHARE:
            limitations.append(f"It labelled only {row.found:.0%} of the {row.name} test slices as {row.name}, so a "
                               f"slice it labels otherwise can still be {row.name}.")
        if row.right < WEAK_SHARE:
            limitations.append(f"Only {row.right:.0%} of its {row.name} labels on test slices were right: a {row.name} "
                               "label asks for a close reading rather than settling one.")
    for view in views:
        if view.accuracy < WEAK_VIEW_ACCURACY:
            limitations.append(f"On {view.view} slices it was right on only {view.accuracy:.0%} of {view.slices} test slices.")
    if data.get("source"):
        limitations.append("It was trained and tested on one public data set; patients, scanners and protocols elsewhere "
                           "may differ. Administrators can see how it does on your patients.")
    random_split = metrics.get("test_random_split") or {}
    return ModelCardView(
        model_version=model_version,
        intended_use=str(card.get("intended_use") or ""),
        reliability=reliability,
        recall_intervals=recall_intervals,
        accuracy=_score(split, "accuracy"),
        macro_f1=_score(split, "macro_f1"),
        patients_accuracy=_number((split.get("by_series") or {}).get("accuracy")),
        views=views,
        threshold=threshold,
        confidence=_confidence_split(split, threshold),
        calibration_method=str(calibration.get("method") or ""),
        calibration_error=_number(split.get("expected_calibration_error")),
        out_of_scope_method=str((card.get("out_of_scope") or {}).get("method") or ""),
        source=str(data.get("source") or ""),
        images=data.get("images") if isinstance(data.get("images"), int) else None,
        images_per_class=_counts(data.get("images_per_class")),
        series_per_split=_counts(data.get("series_per_split")),
        split_method=str(data.get("split") or ""),
        random_split_accuracy=_number(random_split.get("accuracy")),
        limitations=limitations,
    )
