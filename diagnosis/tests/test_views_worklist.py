"""The home page is the triage worklist."""

import datetime
import re

from django.urls import reverse
from django.utils import timezone

from diagnosis.models import Prediction

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory


def scan_with(organization, label="Stone", hours_ago=1, top=0.9, name=None, status=Prediction.Status.DONE):
    scan = ScanFactory(
        patient=PatientFactory(organization=organization, **({"name": name} if name else {})),
        uploaded_at=timezone.now() - datetime.timedelta(hours=hours_ago),
    )
    if status == Prediction.Status.DONE:
        DonePredictionFactory(scan=scan, label=label, top=top)
    else:
        PredictionFactory(scan=scan, status=status)
    return scan


def rows(page: str, scans) -> list:
    return sorted(scans, key=lambda scan: page.index(f'data-scan="{scan.pk}"'))


def test_the_home_page_lists_unreviewed_scans_most_urgent_first_with_the_waiting_time(ui_client, organization):
    normal = scan_with(organization, "Normal", hours_ago=30, name="Nora Normal")
    tumor = scan_with(organization, "Tumor", hours_ago=2, name="Tom Tumor")
    unsure = scan_with(organization, "Cyst", hours_ago=1, top=0.5, name="Una Unsure")
    reviewed = scan_with(organization, "Tumor", name="Rita Reviewed")
    ReviewFactory(prediction=reviewed.latest_prediction)

    response = ui_client.get(reverse("diagnosis:home"))

    page = response.content.decode()
    assert response.status_code == 200
    assert rows(page, [normal, tumor, unsure]) == [unsure, tumor, normal]
    assert "Rita Reviewed" not in page
    assert "Needs review · AI: Cyst 50%" in page
    assert "1\xa0day, 6\xa0hours" in page  # time since upload
    assert reverse("diagnosis:scan_detail", args=[tumor.pk]) in page
    assert f'data-rows-url="{reverse("diagnosis:worklist_rows")}?' in page and "{#" not in page



def test_a_dicom_slices_row_names_its_accession_number_as_the_ris_does(ui_client, organization):
    ordered = scan_with(organization, "Stone")
    ordered.dicom_accession_number = "A-20261206-9"
    ordered.save(update_fields=["dicom_accession_number"])
    scan_with(organization, "Normal")  # a PNG upload: no order to name

    page = ui_client.get(reverse("diagnosis:home")).content.decode()

    assert page.count("Accession ") == 1
    row = page.split(f'data-scan="{ordered.pk}"')[1].split("</tr>")[0]
    assert "Accession A-20261206-9" in row

def test_the_filters_narrow_the_worklist(ui_client, organization):
    stone = scan_with(organization, "Stone", name="Sam Stone")
    scan_with(organization, "Tumor", name="Tom Tumor")
    scan_with(organization, status=Prediction.Status.QUEUED, name="Quinn Queued")

    by_label = ui_client.get(reverse("diagnosis:home"), {"label": "Stone"}).content.decode()
    pending = ui_client.get(reverse("diagnosis:home"), {"status": "pending"}).content.decode()

    assert "Sam Stone" in by_label and "Tom Tumor" not in by_label and f'data-scan="{stone.pk}"' in by_label
    assert "Quinn Queued" in pending and "Sam Stone" not in pending


def test_an_invalid_filter_is_explained_and_the_list_is_unfiltered(ui_client, organization):
    scan_with(organization, "Stone", name="Sam Stone")

    response = ui_client.get(reverse("diagnosis:home"), {"uploaded_from": "not-a-date"})

    assert response.status_code == 400
    assert "Enter a valid date." in response.content.decode() and "Sam Stone" in response.content.decode()


def test_a_reversed_date_range_is_explained_instead_of_an_empty_list(ui_client, organization):
    scan_with(organization, "Stone", name="Sam Stone")

    response = ui_client.get(reverse("diagnosis:home"), {"uploaded_from": "2026-12-04", "uploaded_to": "2026-12-01"})

    assert response.status_code == 400
    assert "The end date 2026-12-01 is before the start date 2026-12-04." in response.content.decode()


def test_other_organizations_scans_are_not_on_the_worklist(ui_client, other_organization):
    scan_with(other_organization, "Tumor", name="Their Patient")

    assert "Their Patient" not in ui_client.get(reverse("diagnosis:home")).content.decode()


def test_worklist_pages_keep_the_filters(ui_client, organization):
    for _ in range(26):
        scan_with(organization, "Stone")

    page = ui_client.get(reverse("diagnosis:home"), {"label": "Stone"}).content.decode()

    assert "Page 1 of 2" in page and 'label=Stone&amp;page=2">Next</a>' in page


def test_the_rows_fragment_follows_the_filters_and_says_which_diagnoses_are_final(ui_client, organization):
    stone = scan_with(organization, "Stone", name="Sam Stone")
    queued = scan_with(organization, status=Prediction.Status.QUEUED, name="Quinn Queued")
    scan_with(organization, "Tumor", name="Tom Tumor")

    response = ui_client.get(reverse("diagnosis:worklist_rows"), {"label": "Stone"})
    everything = ui_client.get(reverse("diagnosis:worklist_rows")).content.decode()

    fragment = response.content.decode()
    assert response.status_code == 200 and "no-cache" in response["Cache-Control"]
    assert "<html" not in fragment and f'data-scan="{stone.pk}"' in fragment and "Tom Tumor" not in fragment
    final = dict(re.findall(r'data-scan="(\d+)"\s+data-final="(\w+)"', everything))
    assert final[str(stone.pk)] == "true" and final[str(queued.pk)] == "false"


def test_the_rows_fragment_refuses_invalid_filters_with_the_reason_and_such_a_page_does_not_ask(ui_client, organization):
    response = ui_client.get(reverse("diagnosis:worklist_rows"), {"status": "lost"})
    page = ui_client.get(reverse("diagnosis:home"), {"status": "lost"}).content.decode()

    assert response.status_code == 400 and "Invalid filters" in response.content.decode()
    assert "data-rows-url" not in page


def test_the_rows_fragment_shows_only_the_own_organization(ui_client, organization, other_organization):
    theirs = scan_with(other_organization, "Tumor", name="Their Patient")

    assert f'data-scan="{theirs.pk}"' not in ui_client.get(reverse("diagnosis:worklist_rows")).content.decode()
