"""/scim/v2/Users: the hospital's directory provisions the organization's members over SCIM 2.0 (RFC 7644), sending
what Entra ID and Okta send. The directory finds a person by userName, adds them, changes them, and closes the
account when they leave, at once: their session and API token stop working."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from diagnosis import services
from diagnosis.models import Membership, ScimToken, StaffChange

from .factories import PASSWORD, MembershipFactory, token_client

BASE = "/scim/v2"
ENTRA_USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    "externalId": "4b6e2c1a-9f0d-4e7b-8c3a-1d2e3f4a5b6c",
    "userName": "carol.jones@hospital.example.org",
    "active": True,
    "displayName": "Carol Jones",
    "title": "Consultant radiologist",  # not kept: accepted all the same
    "emails": [{"primary": True, "type": "work", "value": "carol.jones@hospital.example.org"}],
    "name": {"formatted": "Carol Jones", "familyName": "Jones", "givenName": "Carol"},
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Radiology"},
}


@pytest.fixture
def directory(organization, boss):
    key = services.scim_token_issue(organization=organization, by=boss)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _send(client, method: str, path: str, body=None):
    response = getattr(client, method)(BASE + path, data=json.dumps(body) if body is not None else None,
                                       content_type="application/scim+json")
    if response.status_code != 204:
        assert response["Content-Type"].startswith("application/scim+json"), response["Content-Type"]
    return response


def _patch(*operations) -> dict:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)}


def _changes(user) -> list[tuple[str, str, object]]:
    return [(change.action, change.detail, change.by) for change in
            StaffChange.objects.filter(member=user).order_by("at", "id")]


def test_the_directory_finds_nobody_then_adds_the_person_who_logs_in_with_the_hospital_account(
        directory, organization):
    found = _send(directory, "get", '/Users?filter=userName eq "carol.jones@hospital.example.org"')
    assert found.status_code == 200 and found.json()["totalResults"] == 0 and found.json()["Resources"] == []

    added = _send(directory, "post", "/Users", ENTRA_USER)

    assert added.status_code == 201, added.json()
    resource = added.json()
    user = get_user_model().objects.get(username="carol.jones@hospital.example.org")
    assert resource["id"] == str(user.pk) and added["Location"] == resource["meta"]["location"]
    assert resource["meta"]["location"] == f"http://testserver/scim/v2/Users/{user.pk}"
    assert (resource["userName"], resource["active"], resource["externalId"]) == (
        "carol.jones@hospital.example.org", True, ENTRA_USER["externalId"])
    assert resource["name"]["givenName"] == "Carol" and resource["emails"][0]["value"] == user.email
    assert resource["roles"] == [{"value": "clinician", "display": "Clinician", "primary": True}]
    membership = user.membership
    assert (membership.organization, membership.role, membership.password_change_required, membership.by_directory) == (
        organization, Membership.Role.CLINICIAN, False, True)
    assert not user.has_usable_password()  # the hospital's sign-on is the way in
    assert _changes(user) == [("added", "Clinician, by the hospital's directory (SCIM)", None)]
    again = _send(directory, "get", '/Users?filter=userName eq "Carol.Jones@hospital.example.org"')  # any case
    assert [each["id"] for each in again.json()["Resources"]] == [str(user.pk)]
    by_external = _send(directory, "get", f'/Users?filter=externalId eq "{ENTRA_USER["externalId"]}"')
    assert by_external.json()["totalResults"] == 1


def test_entra_ids_patch_changes_the_names_and_the_email_and_closes_the_account_at_once(directory, organization):
    user_id = _send(directory, "post", "/Users", ENTRA_USER).json()["id"]
    user = get_user_model().objects.get(pk=user_id)
    user.set_password(PASSWORD)  # a kidneyweb password set meanwhile, and a session and token in use
    user.save()
    browser = Client()
    browser.force_login(user)
    api = token_client(user)
    assert browser.get("/patients/").status_code == 200 and api.get("/api/v1/patients/").status_code == 200

    changed = _send(directory, "patch", f"/Users/{user_id}", _patch(
        {"op": "Replace", "path": "name.familyName", "value": "Jones-Smith"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "carol.smith@hospital.example.org"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
         "value": "Oncology"}))
    assert changed.status_code == 200, changed.json()
    assert changed.json()["name"]["familyName"] == "Jones-Smith"
    assert changed.json()["emails"][0]["value"] == "carol.smith@hospital.example.org"

    closed = _send(directory, "patch", f"/Users/{user_id}", _patch(
        {"op": "Replace", "path": "active", "value": "False"}))  # Entra ID sends the boolean as a string

    assert closed.status_code == 200 and closed.json()["active"] is False
    assert browser.get("/patients/").status_code == 302  # the open session ends at its next request
    assert api.get("/api/v1/patients/").status_code == 401
    user.refresh_from_db()
    assert not user.is_active and (user.last_name, user.email) == ("Jones-Smith", "carol.smith@hospital.example.org")
    assert _changes(user)[-1] == ("deactivated", "by the hospital's directory (SCIM)", None)

    opened = _send(directory, "patch", f"/Users/{user_id}", _patch({"op": "replace", "value": {"active": True}}))
    assert opened.json()["active"] is True  # Okta's PATCH: no path, the value names the attributes
    assert _changes(user)[-1][0] == "reactivated"


def test_the_role_follows_the_directorys_roles_and_a_put_without_roles_keeps_it(directory, organization):
    user_id = _send(directory, "post", "/Users", {**ENTRA_USER, "roles": [
        {"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]}).json()["id"]
    membership = Membership.objects.get(user_id=user_id)
    assert membership.role == Membership.Role.ADMIN

    demoted = _send(directory, "patch", f"/Users/{user_id}", _patch(
        {"op": "Replace", "path": 'roles[primary eq "True"].value', "value": "clinician"}))
    replaced = _send(directory, "put", f"/Users/{user_id}", {**ENTRA_USER, "name": {"givenName": "Caroline",
                                                                                   "familyName": "Jones"}})

    assert demoted.json()["roles"][0]["value"] == "clinician"
    assert replaced.status_code == 200 and replaced.json()["name"]["givenName"] == "Caroline"
    membership.refresh_from_db()
    assert membership.role == Membership.Role.CLINICIAN
    assert ("role_changed", "by the hospital's directory (SCIM): now Clinician", None) in _changes(membership.user)
    refused = _send(directory, "patch", f"/Users/{user_id}", _patch(
        {"op": "replace", "path": "roles", "value": [{"value": "surgeon"}]}))
    assert refused.status_code == 400 and refused.json()["scimType"] == "invalidValue"
    assert "kidneyweb's roles are clinician and admin" in refused.json()["detail"]


def test_a_member_an_administrator_added_is_found_and_taken_over_by_the_directory(directory, clinician):
    found = _send(directory, "get", '/Users?filter=userName eq "alice"')
    [resource] = found.json()["Resources"]

    renamed = _send(directory, "patch", f"/Users/{resource['id']}", _patch(
        {"op": "replace", "path": "userName", "value": "alice.smith@hospital.example.org"},
        {"op": "add", "path": "externalId", "value": "e-1"}))

    assert renamed.status_code == 200 and renamed.json()["userName"] == "alice.smith@hospital.example.org"
    clinician.refresh_from_db()
    assert clinician.username == "alice.smith@hospital.example.org"
    assert clinician.membership.by_directory  # the Members page and the API now say the directory manages her
    assert _changes(clinician)[-1] == (
        "renamed", "by the hospital's directory (SCIM): alice is now alice.smith@hospital.example.org", None)


def test_a_taken_username_is_a_conflict_that_names_nobody_and_adds_nothing(directory, organization, other_clinician):
    taken = _send(directory, "post", "/Users", {**ENTRA_USER, "userName": "BOB"})  # another hospital's member

    assert taken.status_code == 409 and taken.json()["scimType"] == "uniqueness"
    assert taken.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "Mercy" not in taken.content.decode()
    assert not Membership.objects.filter(organization=organization, user__username__iexact="bob").exists()
    assert other_clinician.membership.organization.name == "Mercy General"  # left where it was


def test_a_deleted_user_is_closed_kept_for_the_record_and_gone_for_the_directory(directory):
    user_id = _send(directory, "post", "/Users", ENTRA_USER).json()["id"]

    deleted = _send(directory, "delete", f"/Users/{user_id}")

    assert deleted.status_code == 204
    user = get_user_model().objects.get(pk=user_id)  # their reviews and uploads keep their name
    assert not user.is_active
    assert _changes(user)[-1] == ("deactivated", "by the hospital's directory (SCIM): removed from the directory",
                                  None)
    gone = _send(directory, "get", f"/Users/{user_id}")
    assert gone.status_code == 404 and gone.json()["status"] == "404"
    assert _send(directory, "patch", f"/Users/{user_id}", _patch(
        {"op": "replace", "path": "active", "value": True})).status_code == 404
    listed = _send(directory, "get", "/Users").json()
    assert user_id not in [each["id"] for each in listed["Resources"]] and listed["totalResults"] == 1  # boss


def test_the_directory_sees_and_changes_only_its_own_organizations_members(directory, other_clinician):
    listed = _send(directory, "get", "/Users?startIndex=1&count=50").json()

    assert "bob" not in [each["userName"] for each in listed["Resources"]]
    assert _send(directory, "get", f"/Users/{other_clinician.pk}").status_code == 404
    assert _send(directory, "get", "/Users/99999999999999999999999").status_code == 404
    assert _send(directory, "get", "/Users/not-an-id").status_code == 404
    assert _send(directory, "delete", f"/Users/{other_clinician.pk}").status_code == 404
    other_clinician.refresh_from_db()
    assert other_clinician.is_active


def test_without_the_token_or_with_a_revoked_one_nothing_opens(client, organization, boss, clinician):
    key = services.scim_token_issue(organization=organization, by=boss)
    api_token = token_client(boss)  # an administrator's API token is no SCIM token

    missing = APIClient().get(BASE + "/Users")
    as_member = api_token.get(BASE + "/Users")
    replaced_key = services.scim_token_issue(organization=organization, by=boss)
    old = APIClient()
    old.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert as_member.status_code == 401
    assert old.get(BASE + "/Users").status_code == 401  # replaced: the old one stops at once
    assert ScimToken.objects.get(organization=organization).prefix == replaced_key[:8]
    services.scim_token_revoke(organization=organization, by=boss)
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {replaced_key}")
    assert fresh.get(BASE + "/Users").status_code == 401


def test_what_it_cannot_read_is_refused_with_scims_error_and_changes_nothing(directory, clinician):
    bad_filter = _send(directory, "get", '/Users?filter=displayName co "a"')
    not_json = directory.post(BASE + "/Users", data="{not json", content_type="application/scim+json")
    no_user_name = _send(directory, "post", "/Users", {"schemas": ENTRA_USER["schemas"], "name": {}})
    bad_active = _send(directory, "patch", f"/Users/{clinician.pk}", _patch(
        {"op": "replace", "path": "active", "value": "maybe"}))

    assert (bad_filter.status_code, bad_filter.json()["scimType"]) == (400, "invalidFilter")
    assert (not_json.status_code, not_json.json()["scimType"]) == (400, "invalidSyntax")
    assert no_user_name.status_code == 400 and "userName is required" in no_user_name.json()["detail"]
    assert bad_active.status_code == 400 and "active must be true or false" in bad_active.json()["detail"]
    clinician.refresh_from_db()
    assert clinician.is_active


def test_the_service_provider_config_says_what_is_supported(directory):
    config = _send(directory, "get", "/ServiceProviderConfig").json()
    types = _send(directory, "get", "/ResourceTypes").json()

    assert config["patch"]["supported"] is True and config["bulk"]["supported"] is False
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    assert [each["endpoint"] for each in types["Resources"]] == ["/Users"]


def test_closing_the_last_administrator_is_done_and_said(directory, organization, boss, caplog):
    [resource] = _send(directory, "get", '/Users?filter=userName eq "boss"').json()["Resources"]

    _send(directory, "patch", f"/Users/{resource['id']}", _patch({"op": "replace", "path": "active", "value": False}))

    boss.refresh_from_db()
    assert not boss.is_active
    assert _changes(boss)[-1] == ("deactivated", "by the hospital's directory (SCIM): the organization has no "
                                                 "active administrator left", None)
    assert any(f"boss, the last active administrator of {organization.slug}, is no longer one, as the hospital's "
               "directory says" in record.getMessage()
               for record in caplog.records if record.levelname == "ERROR")
