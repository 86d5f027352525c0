"""Every page's text is readable, in the light theme and in the dark one (reading rooms are dim, and a white page
beside a CT slice dazzles): measured in a real browser against WCAG 2.2's contrast minimum (4.5:1, 3:1 for large
text), on the pages clinicians and administrators use, with the states that colour them (results waiting, needing
review, failed, withdrawn; messages and form errors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from diagnosis import services
from diagnosis.models import Membership, Prediction

from ..factories import (PASSWORD, DonePredictionFactory, MembershipFactory, ModelVersionFactory, PatientFactory,
                         PredictionFactory, ReviewFactory, ScanFactory, done_probabilities)
from .conftest import log_in

CHECK = (Path(__file__).parent / "contrast.js").read_text()


def _pages(organization, boss, clinician) -> list[str]:
    ModelVersionFactory(is_active=True)
    patient = PatientFactory(organization=organization, name="Zebedee Quartermain", mrn="H-1")
    done = DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician))
    unsure = DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician))
    Prediction.objects.filter(pk=unsure.pk).update(confidence=0.41, probabilities=done_probabilities("Tumor", 0.41),
                                                   label="Tumor")
    ReviewFactory(prediction=done, reviewed_by=clinician)
    PredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician), status="queued")
    PredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician), status="failed",
                      failure_reason="The worker ran out of memory", finished_at=timezone.now())
    withdrawn = ScanFactory(patient=patient, uploaded_by=clinician)
    services.scan_withdraw(scan=withdrawn, user=clinician, reason="uploaded for the wrong patient")
    export = services.record_export_request(patient=patient, user=boss, base_url="http://testserver/")
    services.record_export_build(export_id=export.pk)
    return ["/", "/patients/", f"/patients/{patient.pk}/", f"/scans/{done.scan_id}/", f"/scans/{unsure.scan_id}/",
            f"/scans/{withdrawn.pk}/", f"/patients/{patient.pk}/erase/", f"/patients/{patient.pk}/exports/{export.pk}/",
            "/staff/", "/agreement/", "/model/", "/performance/", "/training/", "/patients/new/"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_pages_text_meets_the_contrast_minimum_in_both_themes(page, organization, scheme, screenshot,
                                                                     inference_queue):
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    clinician = MembershipFactory(organization=organization, user__username="carol").user
    urls = _pages(organization, boss, clinician)
    inference_queue.drain("exports")  # the export's task: built here instead
    page.emulate_media(color_scheme=scheme)
    log_in(page, "boss", PASSWORD)

    failures = {}
    for url in urls:
        response = page.goto(url)
        assert response.status == 200, url
        found = page.evaluate(CHECK)
        if found:
            failures[url] = found
        screenshot(page, f"contrast-{scheme}{url.replace('/', '-').rstrip('-')}")
    # A form error, as a failed submission shows it.
    page.goto("/patients/new/")
    page.get_by_role("button", name="Register patient").click()
    if found := page.evaluate(CHECK):
        failures["/patients/new/ (errors)"] = found

    # The measure finds what it is for: grey on grey, added to the page.
    page.evaluate("""() => { const p = document.createElement('p'); p.textContent = 'low contrast';
        p.style.cssText = 'color:#777;background:#888'; document.querySelector('main, body').append(p); }""")
    assert any("low contrast" in line for line in page.evaluate(CHECK))
    assert failures == {}, "\n".join(f"{url}:\n  " + "\n  ".join(lines) for url, lines in failures.items())
