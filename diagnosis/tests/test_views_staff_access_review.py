"""The access review on the Members page: administrators download every member as they stand now, and every change
to members and settings in a range of days, as CSV; the API gives the changes too."""

import csv
import datetime
import io

from django.urls import reverse
from django.utils import timezone

from diagnosis import services
from diagnosis.models import Membership, StaffChange

from .factories import MembershipFactory, token_client


def _rows(response) -> list[list[str]]:
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Cache-Control"] == "private, no-store"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def _on(change: StaffChange, day: int) -> None:
    StaffChange.objects.filter(pk=change.pk).update(
        at=timezone.make_aware(datetime.datetime(2026, 11, day, 9, 15)))


def test_the_members_csv_says_who_can_open_records_now_and_who_manages_them(
        client, boss, nurse, organization, other_clinician):
    services.member_deactivate(organization=organization, member=nurse, by=boss, reason="left")
    MembershipFactory(organization=organization, user__username="carol", by_groups=True)
    MembershipFactory(organization=organization, user__username="dan", by_directory=True,
                      user__first_name="=cmd|' /C calc'!A0")  # a name written as a formula stays text
    services.member_api_token_issue(organization=organization, member=boss, by=boss)
    client.force_login(boss)

    response = client.get(reverse("diagnosis:staff_members_csv"))

    assert 'filename="members-' in response["Content-Disposition"]
    header, *rows = _rows(response)
    assert header == ["username", "name", "email", "role", "status", "managed by", "two-factor", "member since",
                      "last login", "API token issued", "API token last used", "API token expires"]
    by_name = {row[0]: dict(zip(header, row)) for row in rows}
    assert sorted(by_name) == ["boss", "carol", "dan", "nurse"]  # the other organization's bob is not there
    assert (by_name["boss"]["role"], by_name["boss"]["status"], by_name["boss"]["managed by"]) == (
        "Administrator", "active", "administrators")
    assert by_name["boss"]["API token issued"][:4] == str(timezone.now().year)
    assert by_name["nurse"]["status"] == "deactivated"
    assert by_name["carol"]["managed by"] == "the hospital's groups"
    assert by_name["dan"]["managed by"] == "the hospital's directory (SCIM)"
    assert by_name["dan"]["name"].startswith("'=cmd")


def test_the_changes_csv_lists_each_change_in_the_days_asked_oldest_first_with_who_made_it(
        client, boss, nurse, organization):
    role = services.member_role_set(organization=organization, member=nurse, role=Membership.Role.ADMIN, by=boss)
    _on(StaffChange.objects.get(member=nurse, action="role_changed"), 3)
    services.member_deactivate(organization=organization, member=nurse, by=boss, reason="moved to another trust")
    _on(StaffChange.objects.get(member=nurse, action="deactivated"), 2)
    services.scim_token_issue(organization=organization, by=boss)
    _on(StaffChange.objects.get(action="policy_changed"), 9)
    directory = services.scim_user_create(organization=organization, person=services.ScimUser(user_name="erin"))
    _on(StaffChange.objects.get(member=directory.user), 1)
    assert role.role == Membership.Role.ADMIN
    client.force_login(boss)

    response = client.get(reverse("diagnosis:staff_changes_csv"),
                          {"changes-since": "2026-11-01", "changes-until": "2026-11-03"})

    assert "2026-11-01-2026-11-03.csv" in response["Content-Disposition"]
    header, *rows = _rows(response)
    assert header == ["time", "member", "by", "change", "detail"]
    assert [(row[0][:10], row[1], row[2], row[3], row[4]) for row in rows] == [
        ("2026-11-01", "erin", "the hospital's directory", "Added", "Clinician, by the hospital's directory (SCIM)"),
        ("2026-11-02", "nurse", "boss", "Deactivated", "moved to another trust"),
        ("2026-11-03", "nurse", "boss", "Role changed", "now Administrator"),
    ]


def test_a_backwards_range_is_explained_on_the_page_and_clinicians_get_nothing(client, boss, clinician):
    client.force_login(boss)
    refused = client.get(reverse("diagnosis:staff_changes_csv"),
                         {"changes-since": "2026-11-05", "changes-until": "2026-11-01"})
    assert refused.status_code == 400 and 'id="access-review"' in refused.content.decode()

    client.force_login(clinician)
    assert client.get(reverse("diagnosis:staff_members_csv")).status_code == 403
    assert client.get(reverse("diagnosis:staff_changes_csv")).status_code == 403


def test_the_api_gives_every_change_of_the_organization_in_the_days_asked(boss, nurse, clinician, organization):
    services.member_role_set(organization=organization, member=nurse, role=Membership.Role.ADMIN, by=boss)
    _on(StaffChange.objects.get(member=nurse, action="role_changed"), 3)
    api = token_client(boss)

    answer = api.get("/api/v1/members/changes/", {"since": "2026-11-03", "until": "2026-11-03"})
    backwards = api.get("/api/v1/members/changes/", {"since": "2026-11-04", "until": "2026-11-03"})

    assert answer.status_code == 200
    assert [(each["member"], each["by"], each["action"]) for each in answer.json()["results"]] == [
        ("nurse", "boss", "role_changed")]
    assert backwards.status_code == 400 and "until" in backwards.json()
    assert token_client(clinician).get("/api/v1/members/changes/").status_code == 403
