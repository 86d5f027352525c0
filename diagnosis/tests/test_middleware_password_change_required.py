"""A member holding a temporary password reaches only the password page until they choose their own."""

import pytest
from django.test import Client

from diagnosis import services
from diagnosis.models import Membership

from .factories import MembershipFactory

NEW = "staple-cobalt-meadow-9"


@pytest.fixture
def temporary(organization):
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    return services.member_create(organization=organization, username="dr.lee", by=boss)[1]


def test_pages_and_the_api_send_a_temporary_password_holder_to_the_password_page(client, temporary):
    assert client.login(username="dr.lee", password=temporary)

    response = client.get("/patients/", follow=True)
    assert response.redirect_chain == [("/accounts/password/", 302)]
    assert "Choose your own password" in response.content.decode()
    api = client.get("/api/v1/patients/")
    assert api.status_code == 403 and "Choose your own password first" in api.json()["detail"]


def test_after_choosing_a_new_password_everything_opens(client, temporary):
    client.login(username="dr.lee", password=temporary)

    response = client.post("/accounts/password/", {"old_password": temporary, "new_password1": NEW, "new_password2": NEW},
                           follow=True)

    assert response.redirect_chain[-1][0] == "/"
    assert client.get("/patients/").status_code == 200
    assert not Membership.objects.get(user__username="dr.lee").password_change_required
    assert Client().login(username="dr.lee", password=NEW)


def test_the_temporary_password_cannot_be_chosen_again(client, temporary):
    client.login(username="dr.lee", password=temporary)

    response = client.post("/accounts/password/", {"old_password": temporary, "new_password1": temporary,
                                                   "new_password2": temporary})

    assert "Choose a password different from the old one." in response.content.decode()
    assert Membership.objects.get(user__username="dr.lee").password_change_required


def test_logging_out_still_works(client, temporary):
    client.login(username="dr.lee", password=temporary)

    client.post("/accounts/logout/")

    assert client.get("/patients/").url.startswith("/accounts/login/")
