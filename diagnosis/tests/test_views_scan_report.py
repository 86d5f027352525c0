import io

from django.urls import reverse
from pypdf import PdfReader

from .factories import DonePredictionFactory, PatientFactory, ScanFactory


def test_the_scan_page_links_the_report_and_it_downloads_as_a_pdf(ui_client, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="Ada Example"))
    DonePredictionFactory(scan=scan, label="Cyst")
    url = reverse("diagnosis:scan_report", args=[scan.pk])

    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    response = ui_client.get(url)

    assert f'href="{url}" download>Download PDF report</a>' in page
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="scan-{scan.pk}-report.pdf"'
    assert "Ada Example" in PdfReader(io.BytesIO(response.content)).pages[0].extract_text()


def test_another_organizations_report_is_404(ui_client, other_organization):
    theirs = ScanFactory(patient=PatientFactory(organization=other_organization))

    assert ui_client.get(reverse("diagnosis:scan_report", args=[theirs.pk])).status_code == 404
