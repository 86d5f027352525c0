"""/api/v1/members/: a hospital's identity system adds joiners, changes roles, deactivates leavers and hands
out temporary passwords, as an administrator does on the Members page, and as the published schema says."""

import pytest
from django.test import Client

from diagnosis import selectors, services
from diagnosis.models import Membership, PatientAccess, StaffChange

from . import openapi
from .factories import PASSWORD, PatientFactory, token_client
from .totp import totp

MEMBER = "/api/v1/members/{id}/"


@pytest.fixture
def api(boss):
    return token_client(boss)


def test_administrators_list_their_organizations_members_as_the_schema_says(client, api, boss, nurse, other_clinician):
    response = api.get("/api/v1/members/")

    assert response.status_code == 200
    assert openapi.mismatches(openapi.load(client), "/api/v1/members/", "get", response) == []
    rows = {row["username"]: row for row in response.json()["results"]}
    assert set(rows) == {"boss", "nurse"}  # not another organization's
    assert rows["nurse"]["role"] == "clinician" and rows["boss"]["role"] == "admin"
    assert rows["nurse"]["is_active"] and not rows["nurse"]["two_factor"] and not rows["nurse"]["login_locked"]


def test_clinicians_may_not_manage_members(nurse):
    response = token_client(nurse).get("/api/v1/members/")

    assert response.status_code == 403
    assert response.json()["detail"] == "Only administrators of your organization may manage its members."


def test_adding_a_member_answers_a_temporary_password_once_and_records_who_added_them(client, api, boss, organization):
    response = api.post("/api/v1/members/", {"username": "dr.lee", "first_name": "Ada", "last_name": "Lee",
                                             "email": "ada@example.org", "role": "clinician"}, format="json")

    assert response.status_code == 201 and response["Cache-Control"] == "private, no-store"
    assert openapi.mismatches(openapi.load(client), "/api/v1/members/", "post", response) == []
    body = response.json()
    assert body["member"]["username"] == "dr.lee" and body["member"]["must_change_password"]
    browser = Client()
    assert browser.login(username="dr.lee", password=body["temporary_password"])
    assert browser.get("/patients/").url == "/accounts/password/"  # it opens only the password page
    change = selectors.staff_changes(organization=organization).get()
    assert (change.member.username, change.by, change.action) == ("dr.lee", boss, StaffChange.Action.ADDED)


def test_a_taken_username_or_a_bad_role_is_refused_with_the_reason(api, nurse):
    taken = api.post("/api/v1/members/", {"username": "NURSE"}, format="json")
    assert taken.status_code == 400 and taken.json() == {"username": ["The username 'NURSE' is taken; choose another."]}
    bad = api.post("/api/v1/members/", {"username": "x", "role": "surgeon"}, format="json")
    assert bad.status_code == 400 and "role" in bad.json()


def test_changing_a_role_and_deactivating_a_leaver(client, api, nurse, organization):
    nurse_api = token_client(nurse)
    url = MEMBER.format(id=nurse.pk)

    promoted = api.patch(url, {"role": "admin"}, format="json")
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert openapi.mismatches(openapi.load(client), MEMBER, "patch", promoted) == []

    left = api.patch(url, {"is_active": False, "reason": "left the hospital"}, format="json")
    assert left.status_code == 200 and left.json()["is_active"] is False
    assert nurse_api.get("/api/v1/patients/").status_code == 401  # the leaver's token stops working at once
    details = [(c.action, c.detail) for c in selectors.staff_changes(organization=organization, member_id=nurse.pk)]
    assert details == [("deactivated", "left the hospital"), ("role_changed", "now Administrator")]

    back = api.patch(url, {"is_active": True, "role": "clinician"}, format="json")
    assert back.json()["is_active"] is True and back.json()["role"] == "clinician"


def test_an_administrator_cannot_demote_or_deactivate_themselves_and_nothing_changes(api, boss):
    response = api.patch(MEMBER.format(id=boss.pk), {"role": "clinician", "is_active": False}, format="json")

    assert response.status_code == 400
    assert "You cannot take the administrator role from yourself" in str(response.json())
    assert Membership.objects.get(user=boss).role == Membership.Role.ADMIN and not StaffChange.objects.exists()


def test_an_empty_change_is_refused(api, nurse):
    response = api.patch(MEMBER.format(id=nurse.pk), {}, format="json")

    assert response.status_code == 400 and response.json() == {"non_field_errors": ["Send role, is_active or both."]}


def test_a_temporary_password_for_a_forgotten_one(client, api, nurse):
    response = api.post(MEMBER.format(id=nurse.pk) + "temporary-password/")

    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    assert openapi.mismatches(openapi.load(client), MEMBER + "temporary-password/", "post", response) == []
    assert response.json()["member"]["must_change_password"]
    assert Client().login(username="nurse", password=response.json()["temporary_password"])
    assert not Client().login(username="nurse", password=PASSWORD)


def test_a_login_lock_is_lifted_and_a_lost_phone_reset(api, nurse, organization):
    for _ in range(10):
        Client().post("/accounts/login/", {"username": "nurse", "password": "wrong"})
    assert api.get(MEMBER.format(id=nurse.pk)).json()["login_locked"]
    assert api.post(MEMBER.format(id=nurse.pk) + "unlock/").json()["login_locked"] is False

    device = services.two_factor_setup_start(user=nurse)
    _, codes = services.two_factor_setup_confirm(user=nurse, token=totp(device.bin_key))
    services.two_factor_recover(user=nurse, code=codes[0])
    shown = api.get(MEMBER.format(id=nurse.pk)).json()
    assert shown["two_factor"] and shown["recovery_codes_left"] == 9
    reset = api.post(MEMBER.format(id=nurse.pk) + "two-factor-reset/")
    assert reset.status_code == 200 and reset.json()["two_factor"] is False
    assert selectors.recovery_codes_left(user=nurse) is None


def test_a_members_changes_and_what_they_opened(client, api, nurse, organization):
    api.patch(MEMBER.format(id=nurse.pk), {"role": "admin"}, format="json")
    patient = PatientFactory(organization=organization, mrn="MRN-9")
    services.patient_access_record(user=nurse, patient=patient, what=PatientAccess.What.PATIENT,
                                   channel=PatientAccess.Channel.WEB)

    changes = api.get(MEMBER.format(id=nurse.pk) + "changes/")
    accesses = api.get(MEMBER.format(id=nurse.pk) + "accesses/")

    assert [(c["by"], c["action"]) for c in changes.json()["results"]] == [("boss", "role_changed")]
    assert [(a["patient_mrn"], a["what"]) for a in accesses.json()["results"]] == [("MRN-9", "patient")]
    for path, response in [(MEMBER + "changes/", changes), (MEMBER + "accesses/", accesses)]:
        assert openapi.mismatches(openapi.load(client), path, "get", response) == []


def test_another_organizations_member_is_not_found(api, other_clinician):
    response = api.patch(MEMBER.format(id=other_clinician.pk), {"is_active": False}, format="json")

    assert response.status_code == 404
    assert other_clinician.__class__.objects.get(pk=other_clinician.pk).is_active
