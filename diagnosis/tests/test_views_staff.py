"""The Members pages: organization administrators add members and manage their accounts; clinicians and
other organizations' administrators cannot."""

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from diagnosis import services
from diagnosis.models import Membership, PatientAccess, RecoveryCode, StaffChange

from .factories import PASSWORD, MembershipFactory, PatientFactory
from .totp import totp

LIST = reverse("diagnosis:staff_list")


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def _secret(response) -> str:
    return re.search(r'<code id="secret">([^<]+)</code>', response.content.decode()).group(1)


def test_the_members_page_lists_the_organizations_members_only(admin_client, nurse, other_clinician):
    page = admin_client.get(LIST).content.decode()

    assert "nurse" in page and "boss" in page and "(you)" in page
    assert other_clinician.get_username() not in page
    assert f'href="{LIST}"' in admin_client.get("/").content.decode()  # the header links here


def test_clinicians_are_refused_the_members_pages_and_do_not_see_the_link(ui_client, nurse):
    for url in (LIST, reverse("diagnosis:staff_member", args=[nurse.pk])):
        response = ui_client.get(url)
        assert response.status_code == 403 and "Only administrators" in response.content.decode()
    assert ui_client.post(reverse("diagnosis:staff_deactivate", args=[nurse.pk])).status_code == 403
    assert f'href="{LIST}"' not in ui_client.get("/").content.decode()
    assert Membership.objects.get(user=nurse).user.is_active


def test_another_organizations_member_answers_404(admin_client, other_clinician):
    assert admin_client.get(reverse("diagnosis:staff_member", args=[other_clinician.pk])).status_code == 404
    assert admin_client.post(reverse("diagnosis:staff_password", args=[other_clinician.pk])).status_code == 404


def test_adding_a_member_shows_their_temporary_password_once(admin_client, organization):
    response = admin_client.post(reverse("diagnosis:staff_create"), {
        "username": "dr.lee", "first_name": "Ada", "last_name": "Lee", "email": "", "role": "clinician"})

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    password = _secret(response)
    assert Client().login(username="dr.lee", password=password)
    member_page = admin_client.get(LIST).content.decode()
    assert "Ada Lee" in member_page and "Temporary password" in member_page and password not in member_page


def test_a_refused_new_member_keeps_the_form_with_the_reason(admin_client, nurse):
    response = admin_client.post(reverse("diagnosis:staff_create"), {"username": "nurse", "first_name": "Other",
                                                                      "role": "clinician"})

    page = response.content.decode()
    assert response.status_code == 400
    assert "The username &#x27;nurse&#x27; is taken" in page and 'value="Other"' in page
    assert not StaffChange.objects.exists()


def test_setting_a_temporary_password_shows_it_and_the_old_one_stops_working(admin_client, nurse):
    response = admin_client.post(reverse("diagnosis:staff_password", args=[nurse.pk]))

    assert response.status_code == 200
    assert not Client().login(username="nurse", password=PASSWORD)
    assert Client().login(username="nurse", password=_secret(response))


def test_deactivating_and_reactivating_a_member(admin_client, nurse):
    url = reverse("diagnosis:staff_member", args=[nurse.pk])
    response = admin_client.post(reverse("diagnosis:staff_deactivate", args=[nurse.pk]), {"reason": "moved away"},
                                 follow=True)

    page = response.content.decode()
    assert response.redirect_chain[-1][0] == url
    assert "nurse is deactivated" in page and "Deactivated" in page and "(moved away)" in page
    assert not Client().login(username="nurse", password=PASSWORD)

    admin_client.post(reverse("diagnosis:staff_reactivate", args=[nurse.pk]))
    assert Client().login(username="nurse", password=PASSWORD)


def test_a_refused_change_says_why_and_changes_nothing(admin_client, boss):
    response = admin_client.post(reverse("diagnosis:staff_role", args=[boss.pk]), {"role": "clinician"}, follow=True)

    assert "You cannot take the administrator role from yourself" in response.content.decode()
    assert Membership.objects.get(user=boss).role == Membership.Role.ADMIN


def test_an_unknown_role_is_refused(admin_client, nurse):
    response = admin_client.post(reverse("diagnosis:staff_role", args=[nurse.pk]), {"role": "owner"}, follow=True)

    assert "Choose a role: Clinician, Administrator." in response.content.decode()
    assert Membership.objects.get(user=nurse).role == Membership.Role.CLINICIAN


def test_an_issued_api_token_is_shown_once_and_works(admin_client, nurse):
    response = admin_client.post(reverse("diagnosis:staff_token", args=[nurse.pk]))

    key = _secret(response)
    assert Client().get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    assert key not in admin_client.get(reverse("diagnosis:staff_member", args=[nurse.pk])).content.decode()

    admin_client.post(reverse("diagnosis:staff_token_revoke", args=[nurse.pk]))
    assert Client().get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_a_locked_member_is_shown_locked_and_can_be_unlocked(admin_client, nurse, settings):
    settings.KIDNEYWEB_LOGIN_MAX_FAILURES = 2
    for _ in range(2):
        Client().login(username="nurse", password="guess")
    assert "Login locked" in admin_client.get(LIST).content.decode()

    response = admin_client.post(reverse("diagnosis:staff_unlock", args=[nurse.pk]), follow=True)

    assert "nurse may try their password again" in response.content.decode()
    assert Client().login(username="nurse", password=PASSWORD)


def test_a_get_on_an_action_changes_nothing(admin_client, nurse):
    response = admin_client.get(reverse("diagnosis:staff_deactivate", args=[nurse.pk]), follow=True)

    assert "Nothing was saved" in response.content.decode()
    assert Membership.objects.get(user=nurse).user.is_active


def test_the_member_page_lists_the_records_they_opened(admin_client, organization, nurse):
    mine = PatientFactory(organization=organization, name="Ada Patient")
    services.patient_access_record(patient=mine, user=nurse, what=PatientAccess.What.PATIENT,
                                   channel=PatientAccess.Channel.API)

    page = admin_client.get(reverse("diagnosis:staff_member", args=[nurse.pk])).content.decode()

    assert "Records opened (latest 1)" in page
    assert "Patient record of" in page and "Ada Patient" in page and "(MRN " in page and "API)" in page
    assert "No patient record opened yet." in admin_client.get(
        reverse("diagnosis:staff_member", args=[MembershipFactory(organization=organization).user.pk])).content.decode()


def test_an_administrator_resets_a_members_two_factor_authentication(admin_client, nurse):
    device = services.two_factor_setup_start(user=nurse)
    services.two_factor_setup_confirm(user=nurse, token=totp(device.bin_key))
    assert ">Reset two-factor authentication<" in admin_client.get(reverse("diagnosis:staff_member", args=[nurse.pk])).content.decode()

    response = admin_client.post(reverse("diagnosis:staff_two_factor_reset", args=[nurse.pk]), follow=True)

    assert "nurse&#x27;s authenticator app no longer works" in response.content.decode()
    assert Client().login(username="nurse", password=PASSWORD)
    nurse_client = Client()
    nurse_client.login(username="nurse", password=PASSWORD)
    assert nurse_client.get("/patients/").status_code == 200  # no code asked any more


def test_members_without_recovery_codes_left_are_pointed_out(admin_client, nurse):
    device = services.two_factor_setup_start(user=nurse)
    _, codes = services.two_factor_setup_confirm(user=nurse, token=totp(device.bin_key))
    services.two_factor_recover(user=nurse, code=codes[0])
    assert "on, 9 of 10 recovery codes left" in admin_client.get(
        reverse("diagnosis:staff_member", args=[nurse.pk])).content.decode()
    assert "no recovery codes" not in admin_client.get(reverse("diagnosis:staff_list")).content.decode()

    RecoveryCode.objects.filter(device__user=nurse).update(used_at=timezone.now())

    assert ">no recovery codes</span>" in admin_client.get(reverse("diagnosis:staff_list")).content.decode()


def test_requiring_two_factor_authentication_of_every_member(admin_client, organization, nurse):
    response = admin_client.post(reverse("diagnosis:staff_policy"), {"require_two_factor": "on"}, follow=True)

    page = response.content.decode()
    assert "Every member now needs two-factor authentication" in page
    assert response.redirect_chain[-1][0] == "/accounts/"  # the administrator too, at once
    organization.refresh_from_db()
    assert organization.require_two_factor
    nurse_client = Client()
    nurse_client.login(username="nurse", password=PASSWORD)
    assert nurse_client.get("/patients/").url == "/accounts/"
    assert organization.staff_changes.get().detail == "two-factor authentication required"
