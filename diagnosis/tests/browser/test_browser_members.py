"""Accounts in a real browser: an administrator adds a colleague, who replaces the temporary password at
the first login; a clinician scans the two-factor QR code, logs in with a code, then with a recovery code;
an administrator tests the notification address and sends a failed notification again; an administrator makes a
SCIM token, the directory adds a member with it, and the access review's CSV lists them."""

import base64
import csv
import io
import json
import re
import time
import urllib.request
from urllib.parse import parse_qs, unquote, urlsplit

import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from diagnosis.models import Membership

from ..factories import PASSWORD, MembershipFactory
from ..totp import key_from_page, settled_totp, totp
from .conftest import TABLET, fits_without_horizontal_scrolling, log_in


def test_a_new_member_gets_a_temporary_password_and_replaces_it_at_first_login(page, organization, screenshot):
    MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss")
    log_in(page, "boss", PASSWORD)

    page.get_by_role("link", name="Members").click()
    screenshot(page, "members-list")
    page.get_by_label("Username").fill("dr.lee")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lee")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("heading", name="Temporary password for dr.lee")).to_be_visible()
    screenshot(page, "members-temporary-password")
    temporary = page.locator("#secret").inner_text()
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_text("Temporary password", exact=True)).to_be_visible()
    screenshot(page, "members-member")
    page.get_by_role("button", name="Log out").click()

    log_in(page, "dr.lee", temporary)
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()
    page.goto("/patients/")  # nothing else opens yet
    expect(page).to_have_url(re.compile(r"/accounts/password/$"))
    page.get_by_label("Old password").fill(temporary)
    page.get_by_label("New password", exact=True).fill("staple-cobalt-meadow-9")
    page.get_by_label("New password confirmation").fill("staple-cobalt-meadow-9")
    page.get_by_role("button", name="Change password").click()

    expect(page.get_by_text("Your password was changed")).to_be_visible()
    page.get_by_role("link", name="Patients", exact=True).click()
    expect(page.get_by_role("heading", name="Patients")).to_be_visible()


def test_a_clinician_sets_up_an_authenticator_app_and_logs_in_with_its_code(page, organization, screenshot):
    MembershipFactory(organization=organization, user__username="carol")
    log_in(page, "carol", PASSWORD)

    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Set up").click()
    qr = page.get_by_role("img", name="QR code that adds kidneyweb to an authenticator app")
    expect(qr).to_be_visible()
    screenshot(page, "two-factor-setup")
    key = key_from_page(page.content())
    # What a phone's camera reads off the screen: the same key, for this user, from kidneyweb.
    [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.screenshot())))
    scanned = urlsplit(code.text)
    query = parse_qs(scanned.query)
    assert (scanned.scheme, scanned.netloc) == ("otpauth", "totp") and "carol" in unquote(scanned.path)
    assert base64.b32decode(query["secret"][0] + "=" * (-len(query["secret"][0]) % 8)) == key
    assert query["issuer"] == ["kidneyweb"]
    page.get_by_label("Code from your authenticator app").fill(settled_totp(key))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Two-factor authentication is on")).to_be_visible()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    screenshot(page, "recovery-codes")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="I have saved them").click()
    expect(page.locator("#recovery-codes-left")).to_contain_text("10 of 10 left")
    screenshot(page, "account")
    page.get_by_role("button", name="Log out").click()

    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Confirm your login")).to_be_visible()
    expect(page.get_by_role("link", name="Patients", exact=True)).to_have_count(0)  # nothing opens yet
    page.get_by_label("Code from your authenticator app").fill(totp(key, time.time() + 30))  # the next code: each works once
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()

    page.get_by_role("button", name="Log out").click()  # the phone is not at hand: a recovery code instead
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[0].upper())
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
    expect(page.get_by_text("You logged in with a recovery code; 9 of your codes are left.")).to_be_visible()


def test_an_administrator_tests_the_notification_address_and_sends_a_failed_notification_again(
        page, organization, receiver, settings, screenshot):
    from diagnosis.models import WebhookDelivery

    settings.KIDNEYWEB_WEBHOOK_ALLOW_HTTP = True  # the receiver here is plain http on localhost
    MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss")
    log_in(page, "boss", PASSWORD)
    page.get_by_role("link", name="Members").click()
    notifications = page.get_by_role("region", name="Result notifications")
    notifications.get_by_label("Notification URL").fill(receiver.url)
    notifications.get_by_role("button", name="Save").click()
    expect(page.locator("#secret")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    page.get_by_role("link", name="Done").click()

    page.get_by_role("button", name="Send a test notification").click()
    expect(page.get_by_text("A test notification is on its way")).to_be_visible()
    expect(page.locator("#deliveries tbody tr").first).to_contain_text("ping")

    failed = WebhookDelivery.objects.create(organization=organization, event="diagnosis.finished", url=receiver.url,
                                            payload={"scan": {"id": 41}}, status="failed", attempts=6,
                                            last_error="Gave up after 6 attempts. Not reached: refused.")
    page.reload()
    row = page.locator("#deliveries tbody tr", has_text="scan 41")
    screenshot(page, "members-notifications")
    row.get_by_role("button", name=re.compile("^Send the diagnosis.finished notification of .* again$")).click()

    expect(page.get_by_text("is being sent again.")).to_be_visible()
    row = page.locator("#deliveries tbody tr", has_text="scan 41")
    expect(row).to_contain_text("Pending")
    expect(row).to_contain_text("by boss")
    expect(row.get_by_role("button")).to_have_count(0)
    failed.refresh_from_db()
    assert failed.status == WebhookDelivery.Status.PENDING
    page.set_viewport_size({"width": 390, "height": 844})
    assert fits_without_horizontal_scrolling(page)


def test_an_administrator_sees_the_slices_the_archive_sent_that_were_refused_on_a_tablet(page, organization,
                                                                                      screenshot):
    from diagnosis.models import DicomStoreRefusal

    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    gateway = MembershipFactory(organization=organization, user__username="pacs-router").user
    DicomStoreRefusal.objects.create(
        organization=organization, sent_by=gateway, patient_id="MRN-0777", failure_code=0x0110,
        sop_instance_uid="1.2.826.0.1.3680043.8.498.1234567890123456789012345678901234567",
        reason="No patient with MRN 'MRN-0777' in your organization: register them first (POST /api/v1/patients/), "
               "then send it again.")
    page.set_viewport_size(TABLET)
    log_in(page, boss.username, PASSWORD)

    page.get_by_role("link", name="Members").click()

    archive = page.locator("#archive")
    expect(archive.get_by_role("heading", name="Archive (DICOMweb store)")).to_be_visible()
    expect(archive).to_contain_text("/api/v1/dicomweb")
    row = page.locator("#refusals tbody tr")
    expect(row).to_contain_text("MRN-0777")
    expect(row).to_contain_text("register them first")
    expect(row).to_contain_text("Not stored")
    expect(row).to_contain_text("sent as pacs-router")
    archive.scroll_into_view_if_needed()
    screenshot(page, "members-archive-refusals-tablet")
    assert fits_without_horizontal_scrolling(page)


def test_an_administrator_makes_a_scim_token_the_directory_adds_a_member_and_the_review_lists_them(
        page, organization, live_server, screenshot):
    MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss")
    log_in(page, "boss", PASSWORD)
    page.get_by_role("link", name="Members").click()

    base = page.locator("#scim-base").inner_text()
    page.get_by_role("button", name="Make a token").click()
    expect(page.get_by_role("heading", name="SCIM token for the hospital's directory")).to_be_visible()
    screenshot(page, "members-scim-token")
    key = page.locator("#secret").inner_text()
    page.get_by_role("link", name="Done").click()
    expect(page.locator("#scim-token")).to_contain_text(key[:8])

    # The directory, as Entra ID's provisioning would, at the tenant URL the page showed.
    request = urllib.request.Request(f"{base}/Users", method="POST", data=json.dumps({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "erin@hospital.example.org",
        "name": {"givenName": "Erin", "familyName": "Hart"}, "active": True}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201

    page.reload()
    expect(page.get_by_text("by the hospital's directory (SCIM)").first).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the members (CSV)").click()
    rows = {row["username"]: row for row in csv.DictReader(open(download.value.path(), encoding="utf-8"))}
    assert rows["erin@hospital.example.org"]["managed by"] == "the hospital's directory (SCIM)"
    assert rows["boss"]["role"] == "Administrator"
