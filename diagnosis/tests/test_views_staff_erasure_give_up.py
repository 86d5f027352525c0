"""The Members page's erased records: an administrator gives up asking the archive to delete the results of an
erasure whose notes it did not store, and the page says so; clinicians and other organizations cannot."""

from django.urls import reverse

from diagnosis.models import PacsDelivery

from .test_api_erasure_give_up import _erased_with_a_failed_note


def test_an_administrator_gives_up_from_the_members_page_and_it_says_who_did(client, organization, boss):
    erasure, note, mrn = _erased_with_a_failed_note(organization, boss)
    PacsDelivery.objects.filter(pk=note.pk).update(status="failed", attempts=5, last_error="Gave up after 5 attempts.")
    client.force_login(boss)
    page = client.get(reverse("diagnosis:staff_list")).content.decode()
    assert "<strong>not stored</strong> (1 of 1 note)" in page and "by itself after 30 days" in page

    response = client.post(reverse("diagnosis:staff_erasure_give_up", args=[erasure.pk]), follow=True)

    page = response.content.decode()
    assert response.redirect_chain[-1][0].endswith("#erasures")
    assert f"The archive is no longer asked to delete the results of erasure #{erasure.pk}" in page
    assert "<strong>given up</strong>" in page and f"by {boss.username}: 1 of 1 note not stored" in page
    assert "Give up</button>" not in page
    note.refresh_from_db()
    assert (note.filed_as, note.filed_in) == ([], {})

    again = client.post(reverse("diagnosis:staff_erasure_give_up", args=[erasure.pk]), follow=True)
    assert "already given up" in again.content.decode()


def test_a_clinician_or_another_organizations_administrator_cannot_give_up(client, organization, boss, clinician,
                                                                           other_organization):
    from diagnosis.models import Membership

    from .factories import MembershipFactory

    erasure, note, _ = _erased_with_a_failed_note(organization, boss)
    PacsDelivery.objects.filter(pk=note.pk).update(status="failed")
    client.force_login(clinician)
    assert client.post(reverse("diagnosis:staff_erasure_give_up", args=[erasure.pk])).status_code == 403
    client.force_login(MembershipFactory(organization=other_organization, role=Membership.Role.ADMIN).user)
    assert client.post(reverse("diagnosis:staff_erasure_give_up", args=[erasure.pk])).status_code == 404
    note.refresh_from_db()
    assert note.filed_as != []
