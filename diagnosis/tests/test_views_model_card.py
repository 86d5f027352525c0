"""About the model: the active version's card as every member reads it, with its limitations stated."""

import json
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from diagnosis import selectors

from .factories import DonePredictionFactory, ModelVersionFactory, PatientFactory, ScanFactory

URL = reverse("diagnosis:model_card")
SHIPPED_CARD = Path(settings.BASE_DIR) / "models" / "kidney-resnet-v5.json"


def shipped_version(**kwargs):
    """The shipped model's own card (no weights are loaded): the page must read the card the product ships."""
    return ModelVersionFactory(name="kidney-resnet-v5", card=json.loads(SHIPPED_CARD.read_text()), **kwargs)


def test_clinicians_read_the_active_versions_test_scores_with_intervals_and_its_limitations(ui_client):
    card = json.loads(SHIPPED_CARD.read_text())
    shipped_version(is_active=True)

    page = ui_client.get(URL).content.decode()

    split = card["metrics"]["test_series_split"]
    assert "kidney-resnet-v5" in page and card["intended_use"] in page
    assert f"Tested on {split['series']} patients ({split['support']} slices)" in page
    assert f"<strong>{split['accuracy'] * 100:.0f}%</strong>" in page
    low, high = split["intervals_95"]["recall_Tumor"]
    assert f"95% interval {low * 100:.0f}%–{high * 100:.0f}%" in page
    limitations = page.split('id="limitations"')[1].split("</section>")[0]
    tumor = split["per_class"]["Tumor"]["recall"]
    assert f"It labelled only {tumor * 100:.0f}% of the Tumor test slices as Tumor" in limitations
    stone = split["per_class"]["Stone"]["precision"]
    assert f"Only {stone * 100:.0f}% of its Stone labels on test slices were right" in limitations
    assert "coronal slices" in limitations and "Cyst" not in limitations  # it finds and names cysts reliably
    assert f"this model scores {card['metrics']['test_random_split']['accuracy'] * 100:.0f}%" in page
    assert "How it does on your organization" not in page  # administrators only


def test_clinicians_read_how_often_unmarked_and_uncertain_results_were_right_and_the_unmarked_misses(ui_client):
    split = json.loads(SHIPPED_CARD.read_text())["metrics"]["test_series_split"]["by_confidence"]
    shipped_version(is_active=True)

    line = " ".join(ui_client.get(URL).content.decode().split('id="confidence-split">')[1].split("</li>")[0].split())

    sure, unsure, flagged = split["confident"], split["uncertain"], split["out_of_scope"]
    assert (f"the results not marked uncertain or out of scope ({sure['slices']} of "
            f"{sure['slices'] + unsure['slices']} slices) were right {sure['right'] / sure['slices'] * 100:.0f}% of "
            "the time") in line
    assert (f"those marked, {unsure['right'] / unsure['slices'] * 100:.0f}% ({flagged['slices']} of them out of "
            "scope)") in line
    tumor = split["confident_wrong"]["Tumor"]
    assert f"{tumor['slices']} Tumor slices of {tumor['series']} patients as Cyst ({tumor['read_as']['Cyst']})" in line
    assert "Stone slice" not in line  # none of the stone slices was read wrong without the mark


def test_a_split_measured_before_out_of_scope_results_counted_as_marked_says_only_uncertain(ui_client):
    card = json.loads(SHIPPED_CARD.read_text())
    del card["metrics"]["test_series_split"]["by_confidence"]["out_of_scope"]
    ModelVersionFactory(card=card, is_active=True)

    line = " ".join(ui_client.get(URL).content.decode().split('id="confidence-split">')[1].split("</li>")[0].split())

    assert "the results not marked uncertain (" in line and "out of scope" not in line


def test_a_split_measured_at_another_threshold_than_the_versions_is_not_shown(db):
    card = json.loads(SHIPPED_CARD.read_text())
    card["calibration"]["confidence_threshold"] = 0.8  # the version marks at 80%; the card's split was at 70%
    version = ModelVersionFactory(card=card)

    assert selectors.model_card_view(model_version=version).confidence is None
    assert selectors.model_card_view(model_version=shipped_version()).confidence.confident > 0


def test_the_version_that_made_a_result_is_reachable_from_its_scan(ui_client, clinician, organization):
    earlier = shipped_version()
    ModelVersionFactory(is_active=True, name="newer")
    prediction = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization),
                                                        uploaded_by=clinician), model_version=earlier)

    scan_page = ui_client.get(reverse("diagnosis:scan_detail", args=[prediction.scan.pk])).content.decode()
    link = f"{URL}?version={earlier.pk}"

    assert link in scan_page
    assert "kidney-resnet-v5" in ui_client.get(link).content.decode()
    assert ui_client.get(f"{URL}?version={earlier.pk + 100}").status_code == 404
    assert ui_client.get(f"{URL}?version=abc").status_code == 404


def test_a_version_without_a_card_says_it_records_no_test(ui_client):
    ModelVersionFactory(is_active=True, card={})

    page = ui_client.get(URL).content.decode()

    assert "records no test of patients" in page and 'id="limitations"' not in page


def test_without_an_active_version_the_page_says_uploads_wait(ui_client):
    assert "No model version is active" in ui_client.get(URL).content.decode()


def test_every_page_links_to_it_for_members_and_administrators_get_the_performance_link(client, boss):
    version = shipped_version(is_active=True)
    client.force_login(boss)

    home = client.get(reverse("diagnosis:home")).content.decode()
    page = client.get(URL).content.decode()

    assert f'href="{URL}"' in home
    assert f"{reverse('diagnosis:performance')}?version={version.pk}" in page


def test_the_cards_reading_survives_odd_values(db):
    version = ModelVersionFactory(card={"metrics": {"test_series_split": {
        "accuracy": "n/a", "intervals_95": {"recall_Stone": [0.2]}, "by_view": {"axial": {"slices": "many"}},
        "per_class": {"Stone": {"recall": 2.0}}}}, "data": {"images": "4817"}})

    card = selectors.model_card_view(model_version=version)

    assert (card.accuracy, card.reliability, card.recall_intervals, card.views, card.images) == (None, None, {}, [], None)
    odd = ModelVersionFactory(card={"metrics": {"test_series_split": {"by_confidence": {
        "threshold": 0.7, "confident": {"slices": 5, "right": 9}, "uncertain": {"slices": 1, "right": 0}}}}})
    assert selectors.model_card_view(model_version=odd).confidence is None  # more right than slices
