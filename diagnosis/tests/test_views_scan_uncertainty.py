"""An uncertain or out-of-scope result is marked "needs review" and never shown as a plain diagnosis."""

from django.urls import reverse

from .factories import DonePredictionFactory, ModelVersionFactory, PatientFactory, ScanFactory


def scan_page_and_state(ui_client, organization, **prediction):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan, model_version=ModelVersionFactory(card={"calibration": {"confidence_threshold": 0.7}}), **prediction)
    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    state = ui_client.get(reverse("diagnosis:scan_status", args=[scan.pk])).json()
    return page, state


def test_a_result_below_the_threshold_is_a_suggestion_that_needs_review(ui_client, organization):
    page, state = scan_page_and_state(ui_client, organization, label="Normal", top=0.52)

    assert "<strong>Needs review.</strong>" in page
    assert "the top probability (52%) is below the confidence threshold (70%)" in page
    assert "AI suggestion (uncertain):" in page and "Most likely:" not in page
    assert (state["needs_review"], state["confidence"], state["confidence_threshold"]) == (True, 0.52, 0.7)


def test_an_out_of_scope_result_needs_review_however_confident(ui_client, organization):
    page, state = scan_page_and_state(
        ui_client, organization, label="Tumor", top=0.99, out_of_scope=True, out_of_scope_reason="a colour image, not a CT slice"
    )

    assert "Out of scope: the image looks like a colour image, not a CT slice." in page
    assert "Most likely:" not in page and state["needs_review"] is True


def test_a_confident_result_is_shown_as_the_most_likely_class_with_the_threshold_on_the_chart(ui_client, organization):
    page, state = scan_page_and_state(ui_client, organization, label="Stone", top=0.9)

    assert "Most likely:" in page and "AI suggestion (uncertain)" not in page
    assert 'data-field="needs_review" role="note" hidden' in page
    assert 'style="--threshold: 70%"' in page
    assert state["needs_review"] is False and state["needs_review_reason"] == ""
