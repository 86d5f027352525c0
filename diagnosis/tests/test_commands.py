import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from diagnosis.models import Membership, ModelVersion, Organization

from .factories import MembershipFactory, ModelVersionFactory


def call(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def token_works(token: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/v1/patients/").status_code == 200


# --- create_api_client ------------------------------------------------------------------------------


def test_create_api_client_creates_org_user_membership_and_prints_a_working_token_last(db):
    out, _ = call("create_api_client", "Royal Infirmary", "ris-bridge")

    token = out.strip().splitlines()[-1]
    membership = Membership.objects.get(user__username="ris-bridge")
    assert membership.organization.name == "Royal Infirmary"
    assert membership.role == "clinician"
    assert token_works(token)


def test_running_it_again_reuses_everything_and_rotates_the_token(db):
    old = call("create_api_client", "Royal Infirmary", "ris-bridge")[0].strip().splitlines()[-1]

    new = call("create_api_client", "Royal Infirmary", "ris-bridge", "--role", "admin")[0].strip().splitlines()[-1]

    assert new != old
    assert token_works(new) and not token_works(old)
    assert Organization.objects.count() == 1 and get_user_model().objects.count() == 1
    assert Membership.objects.get().role == "admin"


def test_a_user_of_another_organization_is_refused(db):
    MembershipFactory(user__username="ris-bridge", organization__name="Elsewhere")

    with pytest.raises(CommandError, match="already belongs to 'Elsewhere'"):
        call("create_api_client", "Royal Infirmary", "ris-bridge")


@pytest.mark.parametrize("name, username, message", [
    ("R" * 201, "ris-bridge", "the limit is 200"),
    ("Royal Infirmary", "r" * 151, "at most 150 characters"),
    ("Royal Infirmary", "ris bridge/1", "Enter a valid username"),
])
def test_an_over_long_name_or_a_bad_username_is_refused_and_nothing_is_created(db, name, username, message):
    with pytest.raises(CommandError, match=message):
        call("create_api_client", name, username)

    assert not Organization.objects.exists() and not get_user_model().objects.exists()


# --- register_model ---------------------------------------------------------------------------------


def test_register_model_registers_and_activates(db, tiny_model_path):
    out, _ = call("register_model", str(tiny_model_path), "--activate")

    version = ModelVersion.objects.get()
    assert version.is_active and "tiny-resnet" in out


def test_register_model_reports_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match="No model file"):
        call("register_model", str(tmp_path / "missing.keras"))


# --- bootstrap --------------------------------------------------------------------------------------


@pytest.fixture
def shipped_model(settings, copy_model):
    settings.KIDNEYWEB_MODEL_PATH = copy_model("shipped.keras")
    return settings.KIDNEYWEB_MODEL_PATH


def test_bootstrap_registers_the_shipped_model_and_a_demo_login(db, shipped_model, client, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)

    out, _ = call("bootstrap")

    assert ModelVersion.objects.get().is_active
    password = out.split("password:")[1].split()[0]
    assert client.login(username="demo", password=password)
    assert Membership.objects.get(user__username="demo").organization.name == "Demo Hospital"


def test_bootstrap_is_idempotent(db, shipped_model, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-pass-123")
    call("bootstrap")

    out, _ = call("bootstrap")

    assert ModelVersion.objects.count() == 1 and Organization.objects.count() == 1
    assert "already exists" in out
    assert get_user_model().objects.get(username="demo").check_password("demo-pass-123")


def test_bootstrap_takes_the_password_from_demo_password(db, shipped_model, client, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "chosen-pass-456")

    call("bootstrap")

    assert client.login(username="demo", password="chosen-pass-456")


def test_bootstrap_follows_a_changed_shipped_model(db, shipped_model):
    call("bootstrap", "--no-demo")
    shipped_model.write_bytes(shipped_model.read_bytes() + b"\0")  # a retrained model ships

    call("bootstrap", "--no-demo")

    assert ModelVersion.objects.count() == 2
    assert ModelVersion.objects.get(is_active=True).sha256 != ModelVersion.objects.order_by("pk").first().sha256


def test_bootstrap_keeps_a_version_an_administrator_activated(db, shipped_model, copy_model):
    chosen = ModelVersionFactory(is_active=True, path=str(copy_model("chosen.keras")))

    call("bootstrap", "--no-demo")

    assert ModelVersion.objects.get(is_active=True) == chosen
    assert ModelVersion.objects.count() == 2


def test_bootstrap_without_the_shipped_model_warns_and_still_creates_the_demo_login(db, settings, tmp_path):
    settings.KIDNEYWEB_MODEL_PATH = tmp_path / "absent.keras"

    out, err = call("bootstrap")

    assert "Shipped model not found" in err
    assert not ModelVersion.objects.exists()
    assert get_user_model().objects.filter(username="demo").exists()


def test_bootstrap_activates_the_shipped_model_when_the_active_versions_file_is_gone(db, shipped_model, tmp_path):
    gone = ModelVersionFactory(is_active=True, path=str(tmp_path / "kidney-resnet-v0.keras"))

    _, err = call("bootstrap", "--no-demo")

    assert "no longer exists" in err
    active = ModelVersion.objects.get(is_active=True)
    assert active != gone and active.sha256


# --- create_organization_admin ----------------------------------------------------------------------


def test_create_organization_admin_prints_a_temporary_password_for_a_new_administrator(db):
    out, _ = call("create_organization_admin", "Royal Infirmary", "dr.grey", "--first-name", "Meredith")

    password = out.split("temporary password: ")[1].split()[0]
    membership = Membership.objects.get(user__username="dr.grey")
    assert membership.organization.name == "Royal Infirmary"
    assert membership.role == "admin" and membership.password_change_required
    assert membership.user.first_name == "Meredith"
    assert Client().login(username="dr.grey", password=password)
    change = membership.organization.staff_changes.get()
    assert change.by is None and "command line" in str(change)


def test_create_organization_admin_refuses_a_taken_username_and_creates_nothing(db):
    MembershipFactory(user__username="dr.grey", organization__name="Elsewhere")

    with pytest.raises(CommandError, match="The username 'dr.grey' is taken"):
        call("create_organization_admin", "Royal Infirmary", "dr.grey")

    assert not Organization.objects.filter(name="Royal Infirmary").exists()
