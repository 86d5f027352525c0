import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis.models import ModelVersion

from .factories import MembershipFactory, ModelVersionFactory, PredictionFactory, ReviewFactory


@pytest.fixture
def admin_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.org", "pw-root-123"))
    return client


@pytest.mark.parametrize("model", ["organization", "membership", "patient", "scan", "prediction", "modelversion", "review"])
def test_every_model_has_a_working_admin_list_and_detail(admin_client, model):
    prediction = PredictionFactory()
    objects = {
        "organization": prediction.scan.patient.organization,
        "membership": MembershipFactory(),
        "patient": prediction.scan.patient,
        "scan": prediction.scan,
        "prediction": prediction,
        "modelversion": prediction.model_version,
        "review": ReviewFactory(),
    }

    assert admin_client.get(reverse(f"admin:diagnosis_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:diagnosis_{model}_change", args=[objects[model].pk])).status_code == 200


def test_the_activate_action_switches_the_active_model_version(admin_client):
    old = ModelVersionFactory(is_active=True)
    new = ModelVersionFactory()

    admin_client.post(
        reverse("admin:diagnosis_modelversion_changelist"),
        {"action": "activate", "_selected_action": [new.pk]},
    )

    assert list(ModelVersion.objects.filter(is_active=True)) == [new]
    old.refresh_from_db()
    assert not old.is_active
