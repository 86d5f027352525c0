import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from diagnosis import services
from diagnosis.models import ApiToken, Membership, Organization

from .factories import OrganizationFactory, UserFactory


def test_organization_get_or_create_reuses_by_name_and_makes_a_unique_slug(db):
    OrganizationFactory(name="Other", slug="st-mary")

    created, was_created = services.organization_get_or_create(name="St. Mary")
    again, again_created = services.organization_get_or_create(name="St. Mary")

    assert was_created and not again_created and created == again
    assert created.slug == "st-mary-2"


def test_an_organization_needs_a_name(db):
    with pytest.raises(ValidationError):
        services.organization_get_or_create(name="  ")


def test_member_get_or_create_makes_a_user_without_a_usable_password_by_default(organization):
    user, created = services.member_get_or_create(organization=organization, username="api")

    assert created and not user.has_usable_password()
    assert Membership.objects.get(user=user).organization == organization


def test_member_get_or_create_updates_the_role_of_an_existing_member(organization):
    user, _ = services.member_get_or_create(organization=organization, username="api")

    services.member_get_or_create(organization=organization, username="api", role="admin")

    assert Membership.objects.get(user=user).role == "admin"


def test_a_member_of_another_organization_is_not_moved(organization, other_clinician):
    with pytest.raises(ValidationError, match="already belongs"):
        services.member_get_or_create(organization=organization, username=other_clinician.username)

    assert other_clinician.membership.organization != organization


def test_an_organization_name_over_the_limit_is_refused_with_its_length(db):
    with pytest.raises(ValidationError, match="201 characters long; the limit is 200"):
        services.organization_get_or_create(name="S" * 201)


def test_a_username_django_would_refuse_is_refused_before_anything_is_stored(organization):
    with pytest.raises(ValidationError, match="Enter a valid username"):
        services.member_get_or_create(organization=organization, username="no spaces please")
    assert not get_user_model().objects.exists()


def test_an_unknown_role_is_refused(organization):
    with pytest.raises(ValidationError, match="Unknown role"):
        services.member_get_or_create(organization=organization, username="x", role="janitor")


def test_api_token_rotate_replaces_the_old_token(db):
    user = UserFactory()
    old = services.api_token_rotate(user=user)

    new = services.api_token_rotate(user=user)

    assert new != old and list(ApiToken.objects.filter(user=user).values_list("digest", flat=True)) == [
        ApiToken.digest_of(new)]
    assert Organization.objects.count() == 0
