from django.urls import reverse

from diagnosis.models import Membership

from .factories import DonePredictionFactory, MembershipFactory, PatientFactory, ReviewFactory, ScanFactory


def test_administrators_see_the_agreement_rate_per_class(client, organization):
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    for ai, said in [("Stone", "Stone"), ("Stone", "Tumor"), ("Tumor", "Tumor")]:
        scan = ScanFactory(patient=PatientFactory(organization=organization))
        ReviewFactory(prediction=DonePredictionFactory(scan=scan, label=ai), label=said)
    client.force_login(admin)

    page = client.get(reverse("diagnosis:agreement")).content.decode()

    assert "<strong>67%</strong> of 3 reviewed scans" in page
    assert '<th scope="row">Stone</th>\n      <td>2</td>\n      <td>1</td>' in page
    assert "50%" in page and "Tumor: 1" in page
    assert reverse("diagnosis:agreement") in client.get(reverse("diagnosis:home")).content.decode()


def test_clinicians_are_refused_the_agreement_page_and_do_not_see_its_link(ui_client):
    response = ui_client.get(reverse("diagnosis:agreement"))

    assert response.status_code == 403
    assert "Only administrators of your organization" in response.content.decode()
    assert reverse("diagnosis:agreement") not in ui_client.get(reverse("diagnosis:home")).content.decode()
