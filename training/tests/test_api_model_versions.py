"""GET /api/v1/model-versions/ and promote/rollback: 200, or 409 with the gate's verdict."""

import pytest

from diagnosis.models import ModelVersion
from diagnosis.tests.factories import ModelVersionFactory
from training.models import ModelPromotion

from .factories import LockedTestEvaluationFactory, LockedTestSetFactory

URL = "/api/v1/model-versions/"


@pytest.fixture
def test_set(db):
    return LockedTestSetFactory()


@pytest.fixture
def active(test_set):
    version = ModelVersionFactory(is_active=True, metrics={"test_series_split": {"macro_f1": 0.8}})
    LockedTestEvaluationFactory(model_version=version, test_set=test_set)
    return version


def test_members_list_versions_with_active_metrics_and_locked_test_scores(api_client, active, test_set):
    unevaluated = ModelVersionFactory()

    body = api_client.get(URL).json()

    rows = {row["id"]: row for row in body["results"]}
    assert rows[active.pk]["active"] is True and rows[unevaluated.pk]["active"] is False
    assert rows[active.pk]["metrics"] == {"test_series_split": {"macro_f1": 0.8}}
    assert rows[active.pk]["locked_test"]["macro_f1"] == 1.0 and rows[active.pk]["locked_test"]["images"] == 20
    assert rows[unevaluated.pk]["locked_test"] is None


def test_a_version_shows_the_gate_against_the_active_one(admin_api, active, test_set):
    candidate = ModelVersionFactory()
    LockedTestEvaluationFactory(model_version=candidate, test_set=test_set, recall={"Tumor": 0.4})

    gate = admin_api.get(f"{URL}{candidate.pk}/").json()["gate"]

    assert gate["passed"] is False and gate["active_version"] == active.pk
    assert gate["candidate"]["recall"]["Tumor"] == 0.4 and gate["baseline"]["recall"]["Tumor"] == 1.0
    assert "calibration" in gate


def test_promote_answers_200_when_the_gate_passes(admin_api, active, test_set):
    candidate = ModelVersionFactory()
    LockedTestEvaluationFactory(model_version=candidate, test_set=test_set)

    response = admin_api.post(f"{URL}{candidate.pk}/promote/", {}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["active"] is True and response.json()["promotion"]["from_version"] == active.name
    assert ModelVersion.objects.get(is_active=True) == candidate


def test_promote_answers_409_with_the_verdict_and_a_reason_overrides_it(admin_api, active, test_set):
    candidate = ModelVersionFactory()
    LockedTestEvaluationFactory(model_version=candidate, test_set=test_set, recall={"Stone": 0.6})

    refused = admin_api.post(f"{URL}{candidate.pk}/promote/", {}, format="json")

    assert refused.status_code == 409
    assert "recall of Stone" in refused.json()["detail"]
    assert refused.json()["gate"]["passed"] is False and refused.json()["gate"]["reasons"]
    assert ModelVersion.objects.get(is_active=True) == active

    forced = admin_api.post(f"{URL}{candidate.pk}/promote/", {"reason": "Accepted by the clinical lead."}, format="json")

    assert forced.status_code == 200
    promotion = ModelPromotion.objects.get()
    assert promotion.gate_overridden and promotion.reason == "Accepted by the clinical lead."


def test_rollback_answers_200_to_an_earlier_version_and_400_to_one_that_never_served(admin_api, active, test_set):
    candidate = ModelVersionFactory()
    LockedTestEvaluationFactory(model_version=candidate, test_set=test_set)
    admin_api.post(f"{URL}{candidate.pk}/promote/", {}, format="json")
    never = ModelVersionFactory()

    assert admin_api.post(f"{URL}{active.pk}/rollback/", {}, format="json").status_code == 200
    assert ModelVersion.objects.get(is_active=True) == active
    response = admin_api.post(f"{URL}{never.pk}/rollback/", {}, format="json")
    assert response.status_code == 400 and "never been active" in str(response.json())


def test_clinicians_cannot_promote_roll_back_or_evaluate(api_client, active):
    candidate = ModelVersionFactory()

    for action in ("promote", "rollback", "evaluate"):
        assert api_client.post(f"{URL}{candidate.pk}/{action}/", {"reason": "x"}, format="json").status_code == 403
    assert ModelVersion.objects.get(is_active=True) == active


def test_the_audit_trail_lists_promotions_for_admins(admin_api, api_client, active, test_set):
    candidate = ModelVersionFactory()
    LockedTestEvaluationFactory(model_version=candidate, test_set=test_set)
    admin_api.post(f"{URL}{candidate.pk}/promote/", {}, format="json")

    rows = admin_api.get("/api/v1/model-promotions/").json()["results"]

    assert [(r["kind"], r["from_version"], r["to_version"], r["performed_by"]) for r in rows] == [
        ("promote", active.name, candidate.name, "ada-admin")
    ]
    assert api_client.get("/api/v1/model-promotions/").status_code == 403


# The evaluation tests run outside a test transaction, as a request does, so the message leaves (or the
# broker fails) during the request itself.
@pytest.mark.django_db(transaction=True)
def test_an_admin_queues_an_evaluation_on_the_training_queue(admin_api, active, training_queue):
    candidate = ModelVersionFactory()

    response = admin_api.post(f"{URL}{candidate.pk}/evaluate/", {}, format="json")

    assert response.status_code == 202 and candidate.name in response.json()["detail"]
    assert training_queue() == [{"task": "training.tasks.evaluate_model_version", "args": [candidate.pk], "kwargs": {}}]


@pytest.mark.django_db(transaction=True)
def test_when_the_broker_is_down_evaluate_answers_503_with_the_reason(admin_api, active, broker_down):
    candidate = ModelVersionFactory()

    response = admin_api.post(f"{URL}{candidate.pk}/evaluate/", {}, format="json")

    assert response.status_code == 503
    assert "could not be queued" in response.json()["detail"] and candidate.name in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_when_the_broker_is_down_a_refused_promotion_says_its_evaluation_was_not_queued(admin_api, active, broker_down):
    candidate = ModelVersionFactory()

    response = admin_api.post(f"{URL}{candidate.pk}/promote/", {}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert "could not be queued" in body["detail"] and "is queued" not in body["detail"]
    assert body["gate"]["evaluation_queued"] is False
    assert ModelVersion.objects.get(is_active=True) == active
