"""POST /api/v1/scans/{id}/restore/: a withdrawal made by mistake is undone, as the schema says."""

from . import openapi
from .factories import token_client

RESTORE = "/api/v1/scans/{id}/restore/"


def test_restoring_answers_the_scan_back_in_the_worklist(client, api_client, withdrawn_scan):
    scan = withdrawn_scan

    response = api_client.post(RESTORE.format(id=scan.pk), {"reason": "withdrawn by mistake"}, format="json")

    assert response.status_code == 200
    assert openapi.mismatches(openapi.load(client), RESTORE, "post", response) == []
    assert response.json()["withdrawn"] is None
    assert [row["id"] for row in api_client.get("/api/v1/worklist/").json()["results"]] == [scan.pk]
    again = api_client.post(RESTORE.format(id=scan.pk), {"reason": "twice"}, format="json")
    assert again.status_code == 400 and again.json() == {"reason": ["This scan is not withdrawn."]}
    assert openapi.mismatches(openapi.load(client), RESTORE, "post", again) == []


def test_a_colleague_who_did_not_upload_it_may_not_restore_it(nurse, withdrawn_scan):
    scan = withdrawn_scan

    response = token_client(nurse).post(RESTORE.format(id=scan.pk), {"reason": "mistake"}, format="json")

    assert response.status_code == 403
    scan.refresh_from_db()
    assert scan.is_withdrawn
