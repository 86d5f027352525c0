"""Restoring a scan withdrawn by mistake on its page: the form under the banner, the reason required, and the
history of its withdrawals listed."""

from django.urls import reverse


def test_the_uploader_restores_it_and_the_page_lists_both_steps(ui_client, withdrawn_scan):
    scan = withdrawn_scan
    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    assert "Restore this scan (withdrawn by mistake)" in page

    response = ui_client.post(reverse("diagnosis:scan_restore", args=[scan.pk]), {"reason": "withdrawn by mistake"},
                              follow=True)

    page = response.content.decode()
    assert "The scan is restored" in page and 'id="withdrawn"' not in page
    assert "by alice: <bdi>wrong patient</bdi>;" in page and "by alice: <bdi>withdrawn by mistake</bdi>" in page
    assert 'action="/scans/%d/withdraw/"' % scan.pk in page  # it may be withdrawn again


def test_a_restore_without_a_reason_is_a_form_error_and_changes_nothing(ui_client, withdrawn_scan):
    scan = withdrawn_scan

    response = ui_client.post(reverse("diagnosis:scan_restore", args=[scan.pk]), {"reason": ""})

    assert response.status_code == 400 and "This field is required." in response.content.decode()
    scan.refresh_from_db()
    assert scan.is_withdrawn


def test_a_colleague_who_did_not_upload_it_sees_no_restore_form_and_is_refused(client, nurse, withdrawn_scan):
    scan = withdrawn_scan
    client.force_login(nurse)

    assert "Restore this scan" not in client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    response = client.post(reverse("diagnosis:scan_restore", args=[scan.pk]), {"reason": "x"}, follow=True)

    assert "or an administrator can restore it" in response.content.decode()
    scan.refresh_from_db()
    assert scan.is_withdrawn
