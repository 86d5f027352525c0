"""The performance page's week-by-week table as CSV: every week of a version's results since its first, oldest
first, for a spreadsheet or a quality report."""

import csv
import datetime
import io

from django.urls import reverse
from django.utils import timezone

from .test_selectors_performance import carded_version, result, results, reviewed
from .test_views_performance import admin_of

URL = reverse("diagnosis:performance_weeks_csv")


def rows(response):
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_every_week_since_the_first_result_is_exported_oldest_first(client, organization, other_organization):
    active = carded_version(is_active=True, name="kidney v9")
    weeks_ago = timezone.now() - datetime.timedelta(weeks=20)
    results(organization, active, count=3, out_of_scope=1, finished_at=weeks_ago)
    reviewed(organization, active, "Stone", "Stone", count=2)
    reviewed(organization, active, "Cyst", "Stone")
    result(organization, active, "Tumor", top=0.5)  # uncertain: under the card's threshold of 0.7
    results(other_organization, active, count=5, out_of_scope=5)
    client.force_login(admin_of(organization))

    response = client.get(URL)

    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="performance-{organization.slug}-kidney-v9-{timezone.localdate():%Y-%m-%d}.csv"')
    header, *weeks = rows(response)
    assert header == ["week_of", "results", "failed", "out_of_scope", "uncertain", "Cyst", "Normal", "Stone", "Tumor",
                      "reviewed", "kept", "kept_share"]
    assert len(weeks) == 21  # this week and the 20 before it, more than the page's 12
    monday = timezone.localdate() - datetime.timedelta(days=timezone.localdate().weekday())
    assert [w[0] for w in (weeks[0], weeks[-1])] == [(monday - datetime.timedelta(weeks=20)).isoformat(),
                                                     monday.isoformat()]
    assert weeks[0][1:] == ["3", "0", "1", "0", "0", "2", "0", "0", "0", "0", ""]
    assert weeks[-1][1:] == ["4", "0", "0", "1", "1", "0", "2", "1", "3", "2", "0.6667"]
    assert all(w[1] == "0" for w in weeks[1:-1])


def test_another_version_is_exported_by_number_and_an_unknown_one_is_not_found(client, organization):
    earlier = carded_version(name="kidney-v8")
    carded_version(is_active=True)
    result(organization, earlier, "Cyst")
    client.force_login(admin_of(organization))

    response = client.get(URL, {"version": earlier.pk})

    assert "kidney-v8" in response["Content-Disposition"]
    assert rows(response)[-1][1] == "1"  # its one result, this week
    assert client.get(URL, {"version": 999999}).status_code == 404


def test_without_any_version_there_is_nothing_to_export(client, organization):
    client.force_login(admin_of(organization))

    response = client.get(URL)

    assert response.status_code == 404


def test_clinicians_are_refused_the_export_and_strangers_sent_to_log_in(ui_client, db):
    from django.test import Client

    assert ui_client.get(URL).status_code == 403
    anonymous = Client().get(URL)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))


def test_the_page_links_to_the_export_of_the_version_shown(client, organization):
    active = carded_version(is_active=True)
    result(organization, active, "Cyst")
    client.force_login(admin_of(organization))

    page = client.get(reverse("diagnosis:performance")).content.decode()

    assert f'href="{URL}?version={active.pk}"' in page
