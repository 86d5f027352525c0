"""The Content-Security-Policy blocks an injected inline script, and the API documentation and the
admin still work under it (the page fixture fails a test on any blocked content)."""

import pytest
from playwright.sync_api import expect

from diagnosis.models import Membership

from ..factories import PASSWORD, MembershipFactory, PatientFactory
from .conftest import log_in


@pytest.mark.blocks_content
def test_a_script_written_into_a_patients_name_does_not_run(page, organization):
    MembershipFactory(organization=organization, user__username="carol")
    patient = PatientFactory(organization=organization, name="Eve <img src=x onerror=\"window.pwned=1\">")
    log_in(page, "carol", PASSWORD)
    page.goto(f"/patients/{patient.pk}/")

    expect(page.get_by_role("heading", level=1)).to_contain_text("Eve <img src=x")
    assert page.evaluate("window.pwned === undefined")
    blocked = page.evaluate("""() => new Promise(resolve => {
        document.addEventListener("securitypolicyviolation", event => resolve(event.violatedDirective), {once: true});
        const script = document.createElement("script");
        script.textContent = "window.injected = 1";
        document.body.appendChild(script);
        setTimeout(() => resolve(null), 2000);
    })""")
    assert blocked and blocked.startswith("script-src")
    assert page.evaluate("window.injected === undefined")


def test_the_api_documentation_renders_its_operations_under_the_policy(page, organization):
    MembershipFactory(organization=organization, user__username="carol")
    page.goto("/api/docs/")
    page.wait_for_url("**/accounts/login/?next=/api/docs/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_text("/api/v1/scans/", exact=True).first).to_be_visible(timeout=30_000)


def test_the_django_admin_works_under_the_policy(page, organization):
    MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="root",
                      user__is_staff=True, user__is_superuser=True)
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto("/admin/diagnosis/patient/add/")
    expect(page.get_by_role("heading", name="Add patient")).to_be_visible()
