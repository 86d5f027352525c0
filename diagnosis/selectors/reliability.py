"""How well a model version did on the test patients of its card: what a clinician weighs an AI label with."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import ModelVersion


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


def model_reliability(*, model_version: ModelVersion) -> Reliability | None:
    """Per class, the recall and precision the version's card records on its series test split (patients
    none of its training saw); None when the card records none (a version registered without one)."""
    split = ((model_version.card or {}).get("metrics") or {}).get("test_series_split") or {}
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
