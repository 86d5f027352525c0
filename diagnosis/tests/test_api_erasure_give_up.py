"""POST /api/v1/erasures/{id}/give-up-archive/: an integrator stops asking the archive to delete an erased record's
results it did not store, so kidneyweb forgets the patient's details those notes kept. Administrators only."""

from diagnosis import services
from diagnosis.models import Membership, Organization, PacsDelivery

from . import openapi
from .factories import MembershipFactory, token_client
from .test_api_archive import ARCHIVE, _delivery, admin_api  # noqa: F401 (fixture)


def _erased_with_a_failed_note(organization, boss):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=ARCHIVE)
    stored = _delivery(organization, status="delivered", attempts=1, response_status=200)
    patient = stored.scan.patient
    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=patient.mrn)
    note = PacsDelivery.objects.get(erasure=erasure)
    return erasure, note, patient.mrn


def test_an_administrator_gives_up_and_the_answer_says_when_and_by_whom(client, admin_api, organization, boss):
    erasure, note, mrn = _erased_with_a_failed_note(organization, boss)
    PacsDelivery.objects.filter(pk=note.pk).update(status="failed", attempts=5, last_error="Gave up after 5 attempts.")

    response = admin_api.post(f"/api/v1/erasures/{erasure.pk}/give-up-archive/")

    assert response.status_code == 200, response.content
    assert openapi.mismatches(openapi.load(client), "/api/v1/erasures/{id}/give-up-archive/", "post", response) == []
    notes = response.json()["archive_notes"]
    assert (notes["total"], notes["failed"], notes["given_up_by"]) == (1, 1, boss.username)
    assert notes["given_up_at"] is not None
    note.refresh_from_db()
    assert (note.filed_as, note.filed_in) == ([], {}) and mrn not in str(note.__dict__)
    listed = admin_api.get("/api/v1/erasures/").json()["results"][0]["archive_notes"]
    assert listed == notes


def test_a_note_still_being_sent_answers_400_with_the_reason_and_keeps_what_it_needs(admin_api, organization, boss):
    erasure, note, mrn = _erased_with_a_failed_note(organization, boss)  # pending: its task is queued

    response = admin_api.post(f"/api/v1/erasures/{erasure.pk}/give-up-archive/")

    assert response.status_code == 400 and "still being sent" in str(response.json())
    note.refresh_from_db()
    assert note.filed_as[1] == mrn and note.status == "pending"


def test_clinicians_and_other_organizations_cannot_give_up(organization, other_organization, boss, clinician):
    erasure, note, _ = _erased_with_a_failed_note(organization, boss)
    PacsDelivery.objects.filter(pk=note.pk).update(status="failed")
    other_boss = MembershipFactory(organization=other_organization, role=Membership.Role.ADMIN).user

    assert token_client(clinician).post(f"/api/v1/erasures/{erasure.pk}/give-up-archive/").status_code == 403
    assert token_client(other_boss).post(f"/api/v1/erasures/{erasure.pk}/give-up-archive/").status_code == 404
    note.refresh_from_db()
    assert note.filed_as != []
