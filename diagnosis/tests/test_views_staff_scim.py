"""The SCIM token on the Members page: an administrator makes one for the hospital's directory and sees it once,
beside the tenant URL to give the directory; replacing it ends the old one, revoking it ends provisioning; each is
recorded; clinicians can do neither."""

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from diagnosis import services
from diagnosis.models import ScimToken, StaffChange

from .factories import MembershipFactory


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def _works(key: str) -> bool:
    directory = APIClient()
    directory.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return directory.get("/scim/v2/Users").status_code == 200


def test_an_administrator_makes_a_token_sees_it_once_and_the_page_names_the_tenant_url(admin_client, organization):
    before = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert "No token: the directory provisions nobody." in before
    assert '<code id="scim-base">http://testserver/scim/v2</code>' in before

    shown = admin_client.post(reverse("diagnosis:staff_scim_token"))

    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    key = re.search(r'<code id="secret">([^<]+)</code>', shown.content.decode())[1]
    assert _works(key)
    token = ScimToken.objects.get(organization=organization)
    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert f"Token <code>{token.prefix}…</code>" in page and "by\n    boss" in page and key not in page
    assert "last used " in page and "not used yet" not in page  # the directory's request above
    assert "SCIM token issued for the hospital&#x27;s directory" in page  # recorded among the staff changes
    # Without the sign-on, the members it adds could not log in: the page says so.
    assert 'id="scim-no-sign-on"' in page


def test_the_member_list_says_whom_the_directory_or_the_groups_manage(admin_client, organization):
    MembershipFactory(organization=organization, user__username="carol", by_groups=True)
    services.scim_user_create(organization=organization, person=services.ScimUser(user_name="erin"))

    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()

    rows = {row.split("</a>")[0].rsplit(">", 1)[-1]: row for row in page.split("<tr>")[2:]}
    assert '(by directory)' in rows["erin"] and '(by groups)' in rows["carol"]
    assert "(by" not in rows["boss"]


def test_with_the_sign_on_set_up_no_warning_is_shown(admin_client, identity_provider):
    assert 'id="scim-no-sign-on"' not in admin_client.get(reverse("diagnosis:staff_list")).content.decode()


def test_replacing_ends_the_old_token_and_revoking_ends_provisioning(admin_client, organization):
    first = re.search(r'<code id="secret">([^<]+)</code>',
                      admin_client.post(reverse("diagnosis:staff_scim_token")).content.decode())[1]
    second = re.search(r'<code id="secret">([^<]+)</code>',
                       admin_client.post(reverse("diagnosis:staff_scim_token")).content.decode())[1]
    assert not _works(first) and _works(second)

    revoked = admin_client.post(reverse("diagnosis:staff_scim_token_revoke"), follow=True)

    assert "The SCIM token no longer works" in revoked.content.decode()
    assert not _works(second) and not ScimToken.objects.filter(organization=organization).exists()
    details = list(StaffChange.objects.filter(organization=organization).order_by("at", "id")
                   .values_list("detail", flat=True))
    assert details[-2:] == ["SCIM token issued for the hospital's directory, replacing the previous one",
                            "SCIM token revoked: the hospital's directory no longer provisions members"]


def test_a_clinician_cannot_make_or_revoke_the_token(client, clinician, organization):
    client.force_login(clinician)

    assert client.post(reverse("diagnosis:staff_scim_token")).status_code == 403
    assert client.post(reverse("diagnosis:staff_scim_token_revoke")).status_code == 403
    assert not ScimToken.objects.filter(organization=organization).exists()
