"""The scan page says how reliable its model version proved on test patients, class by class, so that a
clinician weighs a Tumor label by how often the model's Tumor labels were right."""

import json
import re
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from diagnosis import selectors

from mlcore import SHIPPED_MODEL

from .factories import DonePredictionFactory, ModelVersionFactory, PatientFactory, ScanFactory

CARD = {"metrics": {"test_series_split": {"series": 52, "per_class": {
    "Cyst": {"recall": 0.957, "precision": 0.91, "support": 210},
    "Normal": {"recall": 0.827, "precision": 0.967, "support": 248},
    "Stone": {"recall": 0.768, "precision": 0.467, "support": 56},
    "Tumor": {"recall": 0.655, "precision": 0.701, "support": 168},
}}}}


def scan_page(ui_client, organization, card, label="Tumor"):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan, label=label, model_version=ModelVersionFactory(name="kidney-test", card=card))
    return ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()


def test_the_scan_page_shows_each_classs_recall_and_precision_on_test_patients(ui_client, organization):
    page = scan_page(ui_client, organization, CARD)

    assert "How reliable is kidney-test?" in page
    assert "Tested on 52 patients (682 slices) that none of its training saw" in page
    cells = re.findall(r'<tr( class="current")?><th scope="row">(\w+)</th><td>(\d+)% <span class="muted">of (\d+)</span></td>'
                       r'<td>(\d+)%</td></tr>', page)
    assert [(current, name, found, slices, right) for current, name, found, slices, right in cells] == [
        ("", "Cyst", "96", "210", "91"), ("", "Normal", "83", "248", "97"),
        ("", "Stone", "77", "56", "47"), (' class="current"', "Tumor", "66", "168", "70")]


def test_a_version_whose_card_records_no_test_scores_shows_no_table(ui_client, organization):
    page = scan_page(ui_client, organization, {"calibration": {"confidence_threshold": 0.7}})

    assert "How reliable" not in page


def test_a_card_with_a_missing_or_impossible_score_counts_as_none(organization):
    for broken in ({"recall": 0.9}, {"recall": 1.2, "precision": 0.5}, {"recall": "n/a", "precision": 0.5}):
        card = {"metrics": {"test_series_split": {"per_class": {**CARD["metrics"]["test_series_split"]["per_class"],
                                                               "Stone": broken}}}}
        assert selectors.model_reliability(model_version=ModelVersionFactory(card=card)) is None


def test_without_a_patient_count_the_slices_are_named_alone(organization):
    card = {"metrics": {"test_series_split": {"per_class": CARD["metrics"]["test_series_split"]["per_class"]}}}

    reliability = selectors.model_reliability(model_version=ModelVersionFactory(card=card))

    assert reliability.patients is None and reliability.slices == 682
    assert [c.name for c in reliability.classes] == ["Cyst", "Normal", "Stone", "Tumor"]


def test_with_the_cards_patient_verdicts_each_class_says_how_many_test_patients_were_read_right(ui_client, organization):
    series = ([{"label": "Tumor", "verdict": "Tumor"}] * 5 + [{"label": "Tumor", "verdict": "Stone"}]
              + [{"label": name, "verdict": name} for name in ("Cyst", "Normal", "Stone")])
    card = {"metrics": {"test_series_split": {**CARD["metrics"]["test_series_split"], "by_series": {
        "right": {"Cyst": 1, "Normal": 1, "Stone": 1, "Tumor": 5}, "series": series}}}}

    page = scan_page(ui_client, organization, card)

    assert "<th scope=\"col\">Patients read right</th>" in page
    assert re.search(r'<th scope="row">Tumor</th><td>[^<]*<span class="muted">of 168</span></td><td>70%</td><td>5 of 6</td>', page)
    assert "A patient counts as read right when the mean" in page


def test_without_patient_verdicts_the_table_has_no_patient_column(ui_client, organization):
    assert "Patients read right" not in scan_page(ui_client, organization, CARD)


def test_the_shipped_models_card_gives_every_class_its_scores_and_patients(organization):
    card = json.loads((Path(settings.BASE_DIR) / SHIPPED_MODEL).with_suffix(".json").read_text())
    split = card["metrics"]["test_series_split"]

    reliability = selectors.model_reliability(model_version=ModelVersionFactory(card=card, class_names=card["classes"]))

    assert reliability.by_patient and reliability.patients == split["series"]
    assert sum(c.patients for c in reliability.classes) == split["series"]
    assert sum(c.slices for c in reliability.classes) == split["support"]
    for row in reliability.classes:
        assert row.patients_right == split["by_series"]["right"][row.name]
        assert row.right == split["per_class"][row.name]["precision"]
