"""An administrator, in a real browser, is warned on the worklist that the active model misses stones on their
patients, follows the warning to its performance in use, and reads it on a tablet."""

from playwright.sync_api import expect

from diagnosis.models import Membership

from ..factories import PASSWORD, MembershipFactory
from ..test_selectors_performance import carded_version, reviewed
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_an_administrator_follows_the_worklists_warning_to_the_models_performance(page, organization, screenshot):
    MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss")
    active = carded_version(is_active=True, name="kidney-v9")
    reviewed(organization, active, "Cyst", "Stone", count=8)  # stones the AI called cysts
    reviewed(organization, active, "Stone", "Stone", count=4)
    reviewed(organization, active, "Normal", "Normal", count=20)
    log_in(page, "boss", PASSWORD)

    warning = page.locator("#performance-warning")
    expect(warning).to_contain_text("kidney-v9")
    expect(warning).to_contain_text("Stone found 4 of 12 reviewed (33%; card 77%)")
    warning.get_by_role("link", name="See its performance in use").click()

    expect(page.get_by_role("heading", name="Model performance in use")).to_be_visible()
    stone = page.locator("tr.measure-below", has_text="Stone found")
    expect(stone).to_contain_text("Below its card")
    expect(page.locator("#below-card")).to_contain_text("Stone found 4 of 12")
    page.set_viewport_size(TABLET)
    assert fits_without_horizontal_scrolling(page)
    screenshot(page, "performance-in-use")
