"""A clinician, in a real browser, opens About the model from the footer and reads its limitations on a tablet."""

from playwright.sync_api import expect

from ..factories import PASSWORD, MembershipFactory
from ..test_views_model_card import shipped_version
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_a_clinician_reads_about_the_model_from_the_footer(page, organization, screenshot):
    MembershipFactory(organization=organization, user__username="carol")
    shipped_version(is_active=True)
    log_in(page, "carol", PASSWORD)

    page.get_by_role("link", name="About the model").click()

    expect(page.get_by_role("heading", name="About the model: kidney-resnet-v5")).to_be_visible()
    expect(page.locator("#limitations")).to_contain_text("Tumor test slices")
    page.set_viewport_size(TABLET)
    assert fits_without_horizontal_scrolling(page)
    screenshot(page, "model-card")
