"""Django admin: start a run from the add form, cancel it, and an audited activate action."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis.models import ModelVersion
from diagnosis.tests.factories import ModelVersionFactory
from training.models import LockedTestEvaluation, LockedTestEvaluationFailure, LockedTestSet, ModelPromotion, TrainingRun

from .factories import LockedTestEvaluationFactory, TrainingRunFactory


@pytest.fixture
def superuser_client(client, db, training_settings, training_queue):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.org", "pw-root-123"))
    return client


@pytest.mark.parametrize("model", ["trainingrun", "modelpromotion", "lockedtestset", "lockedtestevaluation",
                                   "lockedtestevaluationfailure"])
def test_every_model_has_a_working_admin_list_and_detail(superuser_client, model):
    evaluation = LockedTestEvaluationFactory()
    objects = {
        "trainingrun": TrainingRunFactory(),
        "modelpromotion": ModelPromotion.objects.create(kind="promote", to_version=evaluation.model_version,
                                                        performed_by=get_user_model().objects.get(username="root")),
        "lockedtestset": evaluation.test_set,
        "lockedtestevaluation": evaluation,
        "lockedtestevaluationfailure": LockedTestEvaluationFailure.objects.create(
            model_version=evaluation.model_version, reason="The model file of version 'v9' is missing: v9.keras"),
    }

    assert superuser_client.get(reverse(f"admin:training_{model}_changelist")).status_code == 200
    assert superuser_client.get(reverse(f"admin:training_{model}_change", args=[objects[model].pk])).status_code == 200


def test_the_add_form_starts_a_run_through_the_service(superuser_client, training_queue,
                                                       django_capture_on_commit_callbacks):
    assert superuser_client.get(reverse("admin:training_trainingrun_add")).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(reverse("admin:training_trainingrun_add"),
                                         {"data": "developer", "preset": "quick", "epochs": "2"})

    assert response.status_code == 302, response.content.decode()[:3000]
    run = TrainingRun.objects.get()
    assert run.status == "queued" and run.overrides == {"epochs": 2} and run.requested_by.username == "root"
    assert training_queue() == [{"task": "training.tasks.train_model", "args": [run.pk], "kwargs": {}}]


def test_the_add_form_refuses_a_second_run_and_bad_parameters(superuser_client):
    current = TrainingRunFactory(status="running")

    busy = superuser_client.post(reverse("admin:training_trainingrun_add"), {"data": "developer", "preset": "standard"})
    assert busy.status_code == 200 and f"Training run {current.pk}" in busy.content.decode()

    current.status, current.is_current = "failed", False
    current.save()
    bad = superuser_client.post(reverse("admin:training_trainingrun_add"),
                                {"data": "developer", "preset": "standard", "architecture": "alexnet"})
    assert bad.status_code == 200 and "unknown architecture" in bad.content.decode()
    assert TrainingRun.objects.count() == 1


def test_the_cancel_action(superuser_client):
    run = TrainingRunFactory(status="queued")

    superuser_client.post(reverse("admin:training_trainingrun_changelist"),
                          {"action": "cancel", "_selected_action": [run.pk]})

    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"


def test_activating_from_the_django_admin_is_recorded_in_the_audit_trail(superuser_client):
    old = ModelVersionFactory(is_active=True)
    new = ModelVersionFactory()

    superuser_client.post(reverse("admin:diagnosis_modelversion_changelist"),
                          {"action": "activate", "_selected_action": [new.pk]})

    assert list(ModelVersion.objects.filter(is_active=True)) == [new]
    promotion = ModelPromotion.objects.get()
    assert (promotion.kind, promotion.from_version, promotion.to_version) == ("admin_activate", old, new)
    assert promotion.performed_by.username == "root" and "gate was not applied" in promotion.reason


def test_reviewed_data_from_an_account_without_organization_asks_for_one(superuser_client, organization):
    response = superuser_client.post(reverse("admin:training_trainingrun_add"),
                                     {"data": "reviewed", "preset": "standard"})

    assert response.status_code == 200 and "your account has no organization" in response.content.decode()
    assert not TrainingRun.objects.exists()

    chosen = superuser_client.post(reverse("admin:training_trainingrun_add"),
                                   {"data": "reviewed", "preset": "standard", "organization": organization.pk})
    assert chosen.status_code == 302
    assert TrainingRun.objects.get().organization == organization
