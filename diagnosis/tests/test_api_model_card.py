"""GET /api/v1/model/: the model's card for every member and for hospital systems, as the schema says."""

import json

from . import openapi
from .factories import ModelVersionFactory, token_client
from .test_views_model_card import SHIPPED_CARD, shipped_version

URL = "/api/v1/model/"


def test_members_get_the_active_versions_scores_intervals_and_limitations(client, clinician):
    card = json.loads(SHIPPED_CARD.read_text())
    version = shipped_version(is_active=True)

    response = token_client(clinician).get(URL)

    assert response.status_code == 200, response.json()
    assert openapi.mismatches(openapi.load(client), URL, "get", response) == []
    body = response.json()
    split = card["metrics"]["test_series_split"]
    assert (body["model_version"], body["name"], body["active"]) == (version.pk, "kidney-resnet-v5", True)
    assert body["test_patients"] == split["series"] and body["accuracy"]["value"] == split["accuracy"]
    assert body["accuracy"]["interval"] == split["intervals_95"]["accuracy"]
    tumor = next(row for row in body["per_class"] if row["name"] == "Tumor")
    assert (tumor["found"], tumor["found_interval"]) == (split["per_class"]["Tumor"]["recall"],
                                                         split["intervals_95"]["recall_Tumor"])
    assert any("Tumor test slices" in line for line in body["limitations"])
    assert {view["view"] for view in body["views"]} == {"axial", "coronal"}
    split = split["by_confidence"]
    assert (body["by_confidence"]["confident"], body["by_confidence"]["confident_right"]) == (
        split["confident"]["slices"], split["confident"]["right"])
    assert body["by_confidence"]["out_of_scope"] == split["out_of_scope"]["slices"]
    tumor = next(miss for miss in body["by_confidence"]["unmarked_misses"] if miss["name"] == "Tumor")
    assert (tumor["slices"], tumor["patients"], tumor["read_as"]) == (
        split["confident_wrong"]["Tumor"]["slices"], split["confident_wrong"]["Tumor"]["series"],
        split["confident_wrong"]["Tumor"]["read_as"])


def test_another_version_by_id_and_404_for_none_or_an_unknown_one(client, clinician):
    api = token_client(clinician)
    assert api.get(URL).status_code == 404  # nothing active yet
    bare = ModelVersionFactory(card={})

    body = api.get(URL, {"model_version": bare.pk}).json()

    assert (body["model_version"], body["accuracy"], body["per_class"], body["limitations"]) == (bare.pk, None, [], [])
    assert openapi.mismatches(openapi.load(client), URL, "get", api.get(URL, {"model_version": bare.pk})) == []
    assert api.get(URL, {"model_version": bare.pk + 100}).status_code == 404
    assert api.get(URL, {"model_version": "x"}).status_code == 400


def test_anonymous_callers_get_401(client):
    assert client.get(URL).status_code == 401
