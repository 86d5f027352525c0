"""POST/GET /api/v1/training-runs/ and cancel: administrators only, clear refusals."""

import pytest
from rest_framework.test import APIClient

from training.models import TrainingRun

from .factories import TrainingRunFactory

URL = "/api/v1/training-runs/"


pytestmark = pytest.mark.usefixtures("training_settings", "training_queue")


def test_an_admin_starts_a_run_and_gets_its_id(admin_api, training_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(URL, {"params": {"epochs": 2}, "data": "developer"}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["epochs"] == 2 and body["params"]["epochs"] == 2
    assert TrainingRun.objects.get(pk=body["id"]).requested_by.username == "ada-admin"
    assert training_queue() == [{"task": "training.tasks.train_model", "args": [body["id"]], "kwargs": {}}]


def test_a_clinician_is_refused(api_client):
    response = api_client.post(URL, {"params": {"epochs": 2}}, format="json")

    assert response.status_code == 403
    assert "Only administrators" in response.json()["detail"]
    assert api_client.get(URL).status_code == 403
    assert not TrainingRun.objects.exists()


def test_anonymous_requests_must_authenticate(db):
    assert APIClient().post(URL, {}, format="json").status_code == 401


@pytest.mark.parametrize("payload, field, message", [
    ({"params": {"epochs": 0}}, "params", "epochs must be between 1 and 500"),
    ({"params": {"architecture": "alexnet"}}, "params", "unknown architecture"),
    ({"params": {"split": {"seed": 1}}}, "params", "The split is locked"),
    ({"data": "everything"}, "data", "not a valid choice"),
    ({"params": "fast"}, "params", "dictionary"),
    ({"params": {"seed": 10**30}}, "params", "seed must be between 0 and 2147483647"),
])
def test_bad_requests_get_400_with_the_reason(admin_api, payload, field, message):
    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not TrainingRun.objects.exists()


def test_an_infinite_number_in_the_json_body_gets_400(admin_api):
    # 1e400 is valid JSON and parses as infinity.
    response = admin_api.post(URL, '{"params": {"dropout": 1e400}}', content_type="application/json")

    assert response.status_code == 400
    assert "dropout must be a finite number" in str(response.json()["params"])
    assert not TrainingRun.objects.exists()


def test_a_second_run_gets_409_naming_the_current_one(admin_api):
    current = TrainingRunFactory(status="running")

    response = admin_api.post(URL, {"params": {"epochs": 1}}, format="json")

    assert response.status_code == 409
    assert response.json()["current_run"] == current.pk
    assert f"Training run {current.pk}" in response.json()["detail"] and "Only one run at a time" in response.json()["detail"]


def test_a_run_shows_status_stage_epochs_metrics_and_its_model_version(admin_api, admin_user):
    from diagnosis.tests.factories import ModelVersionFactory

    version = ModelVersionFactory()
    run = TrainingRunFactory(status="succeeded", stage="done", epoch=3, epochs=3, model_version=version,
                             metrics={"test": {"macro_f1": 0.9}}, log="line one\nline two")

    body = admin_api.get(f"{URL}{run.pk}/").json()

    assert (body["status"], body["stage"], body["epoch"], body["epochs"]) == ("succeeded", "done", 3, 3)
    assert body["metrics"] == {"test": {"macro_f1": 0.9}}
    assert body["model_version"] == version.pk and body["model_version_name"] == version.name
    log = admin_api.get(f"{URL}{run.pk}/log/")
    assert log.status_code == 200 and log.content.decode() == "line one\nline two"
    assert [r["id"] for r in admin_api.get(URL).json()["results"]] == [run.pk]


def test_cancel_stops_a_queued_run_and_refuses_a_finished_one(admin_api):
    queued = TrainingRunFactory(status="queued")

    response = admin_api.post(f"{URL}{queued.pk}/cancel/")

    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    again = admin_api.post(f"{URL}{queued.pk}/cancel/")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_cancel_of_a_running_run_is_requested(admin_api):
    running = TrainingRunFactory(status="running")

    body = admin_api.post(f"{URL}{running.pk}/cancel/").json()

    assert body["status"] == "running" and body["cancel_requested"] is True


def test_a_clinician_cannot_cancel(api_client):
    run = TrainingRunFactory(status="running")

    assert api_client.post(f"{URL}{run.pk}/cancel/").status_code == 403
    assert not TrainingRun.objects.get(pk=run.pk).cancel_requested


def test_create_api_client_with_role_admin_prints_a_token_that_may_train(db, django_capture_on_commit_callbacks):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("create_api_client", "General Hospital", "ops", "--role", "admin", stdout=out, stderr=io.StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"params": {"epochs": 1}, "data": "developer"}, format="json")

    assert response.status_code == 202 and "id" in response.json()


def test_an_admin_sees_own_and_deployment_runs_but_not_another_organizations(admin_api, organization, other_organization):
    own = TrainingRunFactory(organization=organization)
    deployment = TrainingRunFactory(organization=None)
    theirs = TrainingRunFactory(organization=other_organization, log="reviewed scan 412 of Mercy General")

    listed = {r["id"] for r in admin_api.get(URL).json()["results"]}

    assert listed == {own.pk, deployment.pk}
    assert admin_api.get(f"{URL}{theirs.pk}/").status_code == 404
    assert admin_api.get(f"{URL}{theirs.pk}/log/").status_code == 404


def test_another_organizations_run_cannot_be_cancelled(admin_api, other_organization):
    theirs = TrainingRunFactory(status="running", organization=other_organization)

    assert admin_api.post(f"{URL}{theirs.pk}/cancel/").status_code == 404
    assert not TrainingRun.objects.get(pk=theirs.pk).cancel_requested


def test_a_run_of_another_organization_blocks_a_start_without_naming_it(admin_api, other_organization):
    theirs = TrainingRunFactory(status="running", organization=other_organization,
                                requested_by__username="mercy-admin")

    response = admin_api.post(URL, {"params": {"epochs": 1}}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["current_run"] is None
    assert "another organization is running" in body["detail"] and "Only one run at a time" in body["detail"]
    assert str(theirs.pk) not in body["detail"] and "mercy-admin" not in body["detail"]
    assert TrainingRun.objects.count() == 1


def test_training_run_answers_match_the_schema_while_a_run_has_no_model_yet(admin_api, client):
    from diagnosis.tests import openapi

    schema = openapi.load(client)
    started = admin_api.post(URL, {"preset": "quick"}, format="json")
    run = started.json()["id"]

    problems = openapi.mismatches(schema, "/api/v1/training-runs/", "post", started)
    for method, path, url in [("get", "/api/v1/training-runs/", URL),
                              ("get", "/api/v1/training-runs/{id}/", f"{URL}{run}/"),
                              ("post", "/api/v1/training-runs/{id}/cancel/", f"{URL}{run}/cancel/")]:
        problems += openapi.mismatches(schema, path, method, getattr(admin_api, method)(url))
    assert started.status_code == 202 and problems == []


def test_the_log_is_served_to_a_client_that_accepts_only_text(admin_api):
    run = TrainingRunFactory(log="epoch 1/1 loss 0.7")

    response = admin_api.get(f"{URL}{run.pk}/log/", HTTP_ACCEPT="text/plain")

    assert response.status_code == 200 and response.content.decode() == "epoch 1/1 loss 0.7"
    assert admin_api.get(f"{URL}999999/log/", HTTP_ACCEPT="text/plain")["Content-Type"] == "application/json"
