from __future__ import annotations

import hashlib

import factory

from diagnosis.tests.factories import CLASS_NAMES, MembershipFactory, ModelVersionFactory, UserFactory
from diagnosis.models import Membership
from training.gate import side_scores
from training.models import LockedTestEvaluation, LockedTestSet, TrainingRun

__all__ = ["CLASS_NAMES", "AdminMembershipFactory", "LockedTestEvaluationFactory", "LockedTestSetFactory",
           "ModelVersionFactory", "TrainingRunFactory"]


class AdminMembershipFactory(MembershipFactory):
    role = Membership.Role.ADMIN


class TrainingRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingRun

    requested_by = factory.SubFactory(UserFactory)
    status = TrainingRun.Status.SUCCEEDED
    is_current = factory.LazyAttribute(lambda o: o.status in ("queued", "running"))
    params = factory.LazyFunction(lambda: {"train": {"epochs": 1}, "evaluate": {}})
    epochs = 1


def locked_records(labels: list[str]) -> list[dict[str, str]]:
    return [{"path": f"{label}/{label}-{i}.jpg", "label": label, "series": f"{label}-s{i:04d}",
             "pixel": hashlib.sha256(f"{label}{i}".encode()).hexdigest()[:16], "near": f"{i:016x}"}
            for i, label in enumerate(labels)]


class LockedTestSetFactory(factory.django.DjangoModelFactory):
    """A locked test set of the given labels (files that are never read: for gate and API tests)."""

    class Meta:
        model = LockedTestSet

    class Params:
        labels = factory.LazyFunction(lambda: [name for name in CLASS_NAMES for _ in range(5)])

    records = factory.LazyAttribute(lambda o: locked_records(o.labels))
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"test-set-{n}".encode()).hexdigest())
    fingerprint = factory.Sequence(lambda n: hashlib.sha256(f"fingerprint-{n}".encode()).hexdigest())
    data_dir = "data"


def probabilities_with_recall(labels: list[str], recall: dict[str, float]) -> list[list[float]]:
    """Probabilities whose argmax is right for the first ``recall[label]`` share of each class's images
    (and the next class otherwise): a model with exactly those recalls."""
    rows, seen, counts = [], {}, {name: labels.count(name) for name in CLASS_NAMES}
    for label in labels:
        index = seen.get(label, 0)
        seen[label] = index + 1
        right = index < round(recall.get(label, 1.0) * counts[label])
        predicted = label if right else CLASS_NAMES[(CLASS_NAMES.index(label) + 1) % len(CLASS_NAMES)]
        rows.append([0.85 if name == predicted else 0.05 for name in CLASS_NAMES])
    return rows


class LockedTestEvaluationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LockedTestEvaluation

    class Params:
        recall = factory.LazyFunction(dict)

    model_version = factory.SubFactory(ModelVersionFactory)
    test_set = factory.SubFactory(LockedTestSetFactory)
    class_names = factory.LazyFunction(lambda: list(CLASS_NAMES))
    probabilities = factory.LazyAttribute(
        lambda o: probabilities_with_recall([r["label"] for r in o.test_set.records], o.recall)
    )
    scores = factory.LazyAttribute(lambda o: side_scores(
        labels=[r["label"] for r in o.test_set.records], class_names=o.class_names, probabilities=o.probabilities))
