import io

from pypdf import PdfReader
from rest_framework.test import APIClient

from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory


def test_the_report_answers_a_pdf_attachment(api_client, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="Ada Example"))
    ReviewFactory(prediction=DonePredictionFactory(scan=scan, label="Cyst"), label="Cyst")

    response = api_client.get(f"/api/v1/scans/{scan.pk}/report/", HTTP_ACCEPT="application/pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="scan-{scan.pk}-report.pdf"'
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert "Ada Example" in text and "Decision support, not a diagnosis" in " ".join(text.split())


def test_the_scan_links_its_report(api_client, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization))

    assert api_client.get(f"/api/v1/scans/{scan.pk}/").json()["report_url"].endswith(f"/api/v1/scans/{scan.pk}/report/")


def test_another_organizations_report_answers_404(api_client, other_organization):
    theirs = ScanFactory(patient=PatientFactory(organization=other_organization))

    assert api_client.get(f"/api/v1/scans/{theirs.pk}/report/").status_code == 404
    assert api_client.get(f"/api/v1/scans/{theirs.pk}/report/", HTTP_ACCEPT="application/pdf").status_code == 404


def test_anonymous_report_answers_401(organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization))

    assert APIClient().get(f"/api/v1/scans/{scan.pk}/report/").status_code == 401
