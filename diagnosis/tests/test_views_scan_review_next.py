"""Reading through the worklist: "Save and open the next in the worklist" saves the review, then opens the
most urgent scan still unreviewed, and says so when none is left."""

import datetime

from django.urls import reverse
from django.utils import timezone

from diagnosis.models import Review

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory


def _scan(organization, label, top=0.93, hours_ago=1, **prediction):
    scan = ScanFactory(patient=PatientFactory(organization=organization),
                       uploaded_at=timezone.now() - datetime.timedelta(hours=hours_ago))
    if label:
        DonePredictionFactory(scan=scan, label=label, top=top)
    else:
        PredictionFactory(scan=scan, **prediction)
    return scan


def test_saving_and_going_on_opens_the_most_urgent_unreviewed_scan(ui_client, organization, other_organization):
    reading = _scan(organization, "Normal")
    _scan(organization, "Cyst", hours_ago=5)
    tumour = _scan(organization, "Tumor", hours_ago=2)
    _scan(organization, None, status="running", hours_ago=9)
    ReviewFactory(prediction=DonePredictionFactory(scan=_scan(organization, "Stone", hours_ago=8)), label="Stone")
    _scan(other_organization, "Tumor", top=0.4, hours_ago=9)

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]), {"label": "Normal", "then": "next"})

    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:scan_detail", args=[tumour.pk])
    assert Review.objects.filter(scan=reading, label="Normal").exists()
    assert "you confirmed the AI label Normal" in ui_client.get(response["Location"]).content.decode()


def test_an_uncertain_result_comes_before_any_label(ui_client, organization):
    reading = _scan(organization, "Tumor")
    _scan(organization, "Tumor", hours_ago=5)
    uncertain = _scan(organization, "Normal", top=0.4, hours_ago=1)

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]), {"label": "Tumor", "then": "next"})

    assert response["Location"] == reverse("diagnosis:scan_detail", args=[uncertain.pk])


def test_with_nothing_left_to_review_the_worklist_opens_and_says_so(ui_client, organization):
    reading = _scan(organization, "Cyst")

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]), {"label": "Cyst", "then": "next"})

    assert response["Location"] == reverse("diagnosis:home")
    assert "The worklist is empty: every scan is reviewed." in ui_client.get(response["Location"]).content.decode()


def test_a_refused_review_stays_on_its_scan_whatever_was_asked(ui_client, organization):
    reading = _scan(organization, "Cyst")
    _scan(organization, "Tumor", hours_ago=5)

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]), {"label": "Kidney", "then": "next"})

    assert response.status_code == 400 and not Review.objects.exists()
    assert 'id="review-submit-next"' in response.content.decode()


# --- a filtered worklist ----------------------------------------------------------------------------


def test_the_worklist_s_review_links_carry_its_filters(ui_client, organization):
    tumour = _scan(organization, "Tumor")

    page = ui_client.get(reverse("diagnosis:home"), {"label": "Tumor", "status": "result"}).content.decode()

    assert f'href="{reverse("diagnosis:scan_detail", args=[tumour.pk])}?worklist=status%3Dresult%26label%3DTumor"' in page


def test_a_scan_opened_from_a_filtered_worklist_goes_on_through_that_worklist(ui_client, organization):
    reading = _scan(organization, "Tumor")
    uncertain = _scan(organization, "Normal", top=0.4, hours_ago=9)  # more urgent, but not a tumour
    next_tumour = _scan(organization, "Tumor", hours_ago=5)

    page = ui_client.get(reverse("diagnosis:scan_detail", args=[reading.pk]), {"worklist": "label=Tumor"}).content.decode()
    assert '<input type="hidden" name="worklist" value="label=Tumor">' in page
    assert "Save and open the next in the filtered worklist" in page
    assert 'id="filtered-worklist-link"' in page

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]),
                              {"label": "Tumor", "then": "next", "worklist": "label=Tumor"})

    assert response["Location"] == reverse("diagnosis:scan_detail", args=[next_tumour.pk]) + "?worklist=label%3DTumor"
    assert uncertain.pk != next_tumour.pk
    assert 'value="label=Tumor"' in ui_client.get(response["Location"]).content.decode()


def test_with_nothing_left_in_the_filtered_worklist_it_opens_filtered_and_says_so(ui_client, organization):
    reading = _scan(organization, "Stone")
    _scan(organization, "Tumor", hours_ago=5)

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]),
                              {"label": "Stone", "then": "next", "worklist": "label=Stone"})

    assert response["Location"] == reverse("diagnosis:home") + "?label=Stone"
    assert "No other unreviewed scan matches the worklist&#x27;s filters." in ui_client.get(response["Location"]).content.decode()


def test_saving_without_going_on_keeps_the_worklist_s_filters(ui_client, organization):
    reading = _scan(organization, "Cyst")

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]), {"label": "Cyst", "worklist": "label=Cyst"})

    assert response["Location"] == reverse("diagnosis:scan_detail", args=[reading.pk]) + "?worklist=label%3DCyst"


def test_filters_that_no_longer_hold_read_on_through_the_whole_worklist(ui_client, organization):
    reading = _scan(organization, "Cyst")
    other = _scan(organization, "Normal", hours_ago=3)

    page = ui_client.get(reverse("diagnosis:scan_detail", args=[reading.pk]), {"worklist": "label=Kidney"}).content.decode()
    assert 'name="worklist"' not in page and "Save and open the next in the worklist" in page

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]),
                              {"label": "Cyst", "then": "next", "worklist": "label=Kidney"})

    assert response["Location"] == reverse("diagnosis:scan_detail", args=[other.pk])


def test_a_refused_review_keeps_the_worklist_s_filters(ui_client, organization):
    reading = _scan(organization, "Cyst")

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]),
                              {"label": "Kidney", "then": "next", "worklist": "label=Cyst"})

    assert response.status_code == 400
    assert '<input type="hidden" name="worklist" value="label=Cyst">' in response.content.decode()


def test_the_button_says_how_many_scans_are_left_to_review_in_its_worklist(ui_client, organization, other_organization):
    reading = _scan(organization, "Tumor")
    _scan(organization, "Tumor", hours_ago=5)
    _scan(organization, "Normal", hours_ago=3)
    ReviewFactory(prediction=DonePredictionFactory(scan=_scan(organization, "Tumor", hours_ago=8)), label="Tumor")
    _scan(other_organization, "Tumor")
    url = reverse("diagnosis:scan_detail", args=[reading.pk])

    assert 'id="worklist-remaining">(2 more to review)' in ui_client.get(url).content.decode()
    assert 'id="worklist-remaining">(1 more to review)' in ui_client.get(url, {"worklist": "label=Tumor"}).content.decode()
    assert 'id="worklist-remaining">(none left)' in ui_client.get(url, {"worklist": "label=Stone"}).content.decode()
