from diagnosis.models import Membership

from .factories import DonePredictionFactory, MembershipFactory, PatientFactory, ReviewFactory, ScanFactory, token_client

URL = "/api/v1/agreement/"


def _review(organization, ai: str, said: str) -> None:
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    ReviewFactory(prediction=DonePredictionFactory(scan=scan, label=ai), label=said)


def test_administrators_get_agreement_per_class_with_what_reviewers_said_instead(organization):
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN).user
    for ai, said in [("Stone", "Stone"), ("Stone", "Tumor"), ("Tumor", "Tumor")]:
        _review(organization, ai, said)
    _review(MembershipFactory().organization, "Cyst", "Normal")  # another organization's review stays out

    response = token_client(admin).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert (body["reviewed"], body["agreed"]) == (3, 2)
    assert abs(body["rate"] - 2 / 3) < 1e-9
    by_label = {row["label"]: row for row in body["classes"]}
    assert by_label["Stone"] == {"label": "Stone", "reviewed": 2, "agreed": 1, "rate": 0.5, "corrected_to": {"Tumor": 1}}
    assert by_label["Cyst"] == {"label": "Cyst", "reviewed": 0, "agreed": 0, "rate": None, "corrected_to": {}}


def test_clinicians_are_refused_agreement_with_a_reason(api_client):
    response = api_client.get(URL)

    assert response.status_code == 403
    assert "Only administrators" in response.json()["detail"]


def test_anonymous_callers_get_401(client):
    assert client.get(URL).status_code == 401
