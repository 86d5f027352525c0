"""Form targets answer a GET (the login page's way back after a session expired) with the form's page, not 405."""

import pytest
from django.urls import reverse

from diagnosis.models import Prediction, Review

from .factories import DonePredictionFactory, PatientFactory, ScanFactory


@pytest.fixture
def scan(organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan, label="Stone")
    return scan


def test_after_an_expired_session_the_login_leads_back_to_the_scan_and_says_nothing_was_saved(client, clinician, scan):
    target = reverse("diagnosis:scan_review", args=[scan.pk])

    refused = client.post(target, {"label": "Tumor"})
    assert refused.status_code == 302 and refused.url.startswith(reverse("login"))

    client.force_login(clinician)
    back = client.get(target, follow=True)

    assert back.redirect_chain == [(reverse("diagnosis:scan_detail", args=[scan.pk]), 302)]
    assert back.status_code == 200 and "Nothing was saved" in back.content.decode()
    assert not Review.objects.exists()


@pytest.mark.parametrize("name, page", [("scan_review", "scan_detail"), ("scan_rerun", "scan_detail"), ("scan_refile", "scan_detail"),
                                        ("scan_upload", "patient_detail")])
def test_a_get_on_a_form_target_goes_to_its_page_and_changes_nothing(ui_client, scan, name, page):
    pk = scan.patient.pk if page == "patient_detail" else scan.pk

    response = ui_client.get(reverse(f"diagnosis:{name}", args=[pk]))

    assert response.status_code == 302 and response.url == reverse(f"diagnosis:{page}", args=[pk])
    assert Prediction.objects.count() == 1 and not Review.objects.exists()


def test_other_methods_on_a_form_target_still_answer_405(ui_client, scan):
    assert ui_client.put(reverse("diagnosis:scan_rerun", args=[scan.pk])).status_code == 405


def test_a_get_on_another_organizations_scan_target_is_404_after_the_redirect(ui_client, other_organization):
    theirs = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=other_organization))).scan

    assert ui_client.get(reverse("diagnosis:scan_review", args=[theirs.pk]), follow=True).status_code == 404
