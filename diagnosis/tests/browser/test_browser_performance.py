"""An administrator, in a real browser, corrects a result and so tips the active model below its card on stones:
the worklist then warns them, and the warning leads to the model's performance in use, readable on a tablet."""

from playwright.sync_api import expect

from diagnosis.models import Membership, PerformanceAlert

from ..factories import PASSWORD, MembershipFactory
from ..test_selectors_performance import carded_version, result, reviewed
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_a_correction_that_tips_the_model_below_its_card_warns_the_administrator(page, organization, screenshot):
    MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss")
    active = carded_version(is_active=True, name="kidney-v9")
    reviewed(organization, active, "Cyst", "Stone", count=6)  # stones the AI called cysts
    reviewed(organization, active, "Stone", "Stone", count=3)
    reviewed(organization, active, "Normal", "Normal", count=20)
    scan = result(organization, active, "Cyst").scan  # the tenth stone: 3 of 10 found is below the card's 77%
    log_in(page, "boss", PASSWORD)
    expect(page.locator("#performance-warning")).to_have_count(0)

    page.goto(f"/scans/{scan.pk}/")
    page.get_by_role("radio", name="Stone", exact=True).check()
    page.locator("#review-submit").click()
    expect(page.locator("#current-review")).to_contain_text("corrected the AI label Cyst to Stone")
    assert PerformanceAlert.objects.get().measures

    page.get_by_role("link", name="Worklist").click()
    warning = page.locator("#performance-warning")
    expect(warning).to_contain_text("kidney-v9")
    expect(warning).to_contain_text("Stone found")
    warning.get_by_role("link", name="See its performance in use").click()

    expect(page.get_by_role("heading", name="Model performance in use")).to_be_visible()
    expect(page.locator("tr.measure-below", has_text="Stone found")).to_contain_text("Below its card")
    expect(page.locator("#below-card")).to_contain_text("Stone found 3 of 10")
    expect(page.locator("#alerts")).to_contain_text("still open")
    page.set_viewport_size(TABLET)
    assert fits_without_horizontal_scrolling(page)
    screenshot(page, "performance-in-use")


def test_unusual_uploads_are_judged_on_schedule_and_shown_to_the_administrator(
    page, organization, screenshot, django_capture_on_commit_callbacks
):
    from diagnosis import services
    from diagnosis.models import InputsAlert

    from ..test_selectors_performance import results

    MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss")
    active = carded_version(is_active=True, name="kidney-v9")
    results(organization, active, count=60, out_of_scope=4)  # 4 of 60 out of scope; its card expects 0.5%
    with django_capture_on_commit_callbacks(execute=True):
        services.inputs_alerts_judge()  # what Celery beat runs each hour
    assert InputsAlert.objects.get().cleared_at is None

    log_in(page, "boss", PASSWORD)
    warning = page.locator("#inputs-warning")
    expect(warning).to_contain_text("4 of 60 results in the last 4 weeks")
    warning.get_by_role("link", name="See its performance in use").click()

    expect(page.locator("#inputs-above")).to_contain_text("4 of 60")
    expect(page.locator("#inputs-alerts")).to_contain_text("still open")
    expect(page.locator("#inputs-alerts")).to_contain_text("4 of 60 results out of scope")
    page.set_viewport_size(TABLET)
    assert fits_without_horizontal_scrolling(page)
    page.locator("#inputs-alerts").scroll_into_view_if_needed()
    screenshot(page, "performance-unusual-uploads")
