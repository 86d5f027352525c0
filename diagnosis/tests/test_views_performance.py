"""The performance-in-use page and the worklist's warning when the active model slips below its card."""

from django.urls import reverse

from diagnosis import services
from diagnosis.models import Membership

from .factories import MembershipFactory, ModelVersionFactory
from .test_selectors_performance import carded_version, result, results, reviewed

URL = reverse("diagnosis:performance")


def admin_of(organization):
    return MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user


def test_administrators_see_the_active_versions_shares_against_its_card_with_intervals(client, organization):
    active = carded_version(is_active=True, name="kidney-v9")
    reviewed(organization, active, "Tumor", "Tumor", count=3)
    reviewed(organization, active, "Normal", "Tumor", count=9)
    result(organization, active, "Stone", out_of_scope=True)
    client.force_login(admin_of(organization))

    page = client.get(URL).content.decode()

    assert "kidney-v9" in page and "(active)" in page
    assert "13 results of your organization" in page and "out of scope: 1," in page and "Reviewed: 12." in page
    rows = {row.split("</th>")[0]: row for row in page.split('<th scope="row">')[1:]}
    assert "3 of 12" in rows["Tumor found"] and "25%" in rows["Tumor found"] and "9%–53%" in rows["Tumor found"]
    assert "65%" in rows["Tumor found"] and "Below its card" in rows["Tumor found"]
    assert "82%" in rows["AI labels kept"] and "Below its card" in rows["AI labels kept"]
    assert "0 of 9" in rows["Normal labels kept"] and "Too few reviewed (under 10)" in rows["Normal labels kept"]
    assert "0 of 0" in rows["Cyst found"]
    assert 'id="below-card"' in page and "Tumor found 3 of 12 from 12 patients (25%; card 65%)" in page
    assert page.count('<th scope="row">') >= 1 + 2 * 4 + 12  # every measure and every week


def test_another_version_is_chosen_by_number_and_an_unknown_one_is_not_found(client, organization, other_organization):
    earlier, active = carded_version(name="kidney-v1"), carded_version(is_active=True, name="kidney-v2")
    reviewed(organization, earlier, "Stone", "Stone", count=2)
    elsewhere = ModelVersionFactory(name="kidney-v3")
    result(other_organization, elsewhere, "Stone")
    client.force_login(admin_of(organization))

    page = client.get(URL, {"version": earlier.pk}).content.decode()
    unused = client.get(URL, {"version": elsewhere.pk}).content.decode()

    assert f'<option value="{earlier.pk}" selected>kidney-v1</option>' in page
    assert f'<option value="{active.pk}">kidney-v2 (active)</option>' in page
    assert "2 of 2" in page and "kidney-v3" not in page  # offered only once it diagnosed a scan here
    assert f'<option value="{elsewhere.pk}" selected>kidney-v3</option>' in unused
    assert "0 results of your organization" in unused
    assert client.get(URL, {"version": elsewhere.pk + 100}).status_code == 404
    assert client.get(URL, {"version": "x"}).status_code == 404


def test_the_page_says_so_when_no_version_has_diagnosed_anything(client, organization):
    client.force_login(admin_of(organization))

    response = client.get(URL)

    assert response.status_code == 200
    assert "none has diagnosed your organization" in response.content.decode()


def test_clinicians_are_refused_the_page(ui_client):
    response = ui_client.get(URL)

    assert response.status_code == 403
    assert "Only administrators of your organization" in response.content.decode()


def test_the_worklist_warns_administrators_but_not_clinicians_while_the_active_model_has_an_open_alert(
    client, organization
):
    active = carded_version(is_active=True, name="kidney-v9")
    reviewed(organization, active, "Cyst", "Stone", count=12)  # stones called cysts
    services.performance_alert_update(organization=organization, model_version=active)  # as a review would
    clinician = MembershipFactory(organization=organization, role=Membership.Role.CLINICIAN).user
    client.force_login(admin_of(organization))

    page = client.get(reverse("diagnosis:home")).content.decode()

    warning = page.split('id="performance-warning"')[1].split("</div>")[0]
    assert "kidney-v9" in warning and "Stone found" in warning and URL in warning
    client.force_login(clinician)
    assert 'id="performance-warning"' not in client.get(reverse("diagnosis:home")).content.decode()


def test_the_worklist_has_no_warning_once_the_alert_is_cleared(client, organization):
    active = carded_version(is_active=True)
    reviewed(organization, active, "Cyst", "Stone", count=12)
    services.performance_alert_update(organization=organization, model_version=active)
    reviewed(organization, active, "Stone", "Stone", count=100)
    reviewed(organization, active, "Cyst", "Cyst", count=100)
    services.performance_alert_update(organization=organization, model_version=active)
    client.force_login(admin_of(organization))

    assert 'id="performance-warning"' not in client.get(reverse("diagnosis:home")).content.decode()


def test_the_page_lists_when_the_version_was_below_its_card(client, organization):
    from django.utils import timezone

    from diagnosis.models import PerformanceAlert

    active = carded_version(is_active=True)
    PerformanceAlert.objects.create(organization=organization, model_version=active, measures=["Stone found"],
                                    cleared_at=timezone.now())
    PerformanceAlert.objects.create(organization=organization, model_version=active, measures=["Tumor found", "AI labels kept"])
    client.force_login(admin_of(organization))

    alerts = client.get(URL).content.decode().split('id="alerts"')[1].split("</section>")[0]

    assert alerts.index("still open") < alerts.index("Stone found")  # the open one first
    assert "Tumor found, AI labels kept" in alerts and alerts.count("<li>") == 2


def test_the_page_lists_when_uploads_were_unusual_and_why_each_alert_ended(client, organization, other_organization):
    from django.utils import timezone

    from diagnosis.models import InputsAlert

    active = carded_version(is_active=True)
    InputsAlert.objects.create(organization=organization, model_version=active, out_of_scope=3, diagnosed=60,
                               cleared_at=timezone.now(), ended=InputsAlert.Ended.USUAL)
    InputsAlert.objects.create(organization=organization, model_version=active, out_of_scope=7, diagnosed=80)
    InputsAlert.objects.create(organization=other_organization, model_version=active, out_of_scope=9, diagnosed=90)
    client.force_login(admin_of(organization))

    page = client.get(URL).content.decode()
    listed = page.split('id="inputs-alerts"')[1].split("</ul>")[0]

    assert "Every hour" in page and "7 of 80 results out of scope" in listed
    assert listed.index("still open") < listed.index("(back within what its card expects)")
    assert "3 of 60" in listed and "9 of 90" not in listed and listed.count("<li>") == 2


def test_a_result_by_a_version_with_an_open_alert_cautions_every_reader(ui_client, clinician, organization):
    from django.utils import timezone

    from diagnosis.models import PerformanceAlert

    from .factories import DonePredictionFactory, PatientFactory, ScanFactory

    alerted, other = carded_version(is_active=True, name="kidney-v9"), carded_version(name="kidney-v8")
    alert = PerformanceAlert.objects.create(organization=organization, model_version=alerted, measures=["Tumor found"])
    PerformanceAlert.objects.create(organization=organization, model_version=other, measures=["Stone found"],
                                    cleared_at=timezone.now())
    patient = PatientFactory(organization=organization)
    by_alerted = DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician), model_version=alerted)
    by_other = DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician), model_version=other)

    page = ui_client.get(reverse("diagnosis:scan_detail", args=[by_alerted.scan.pk])).content.decode()
    caution = page.split('id="performance-caution"')[1].split("</p>")[0]

    assert "kidney-v9" in caution and "Tumor found" in caution and f"{alert.raised_at:%Y-%m-%d}" in caution
    other_page = ui_client.get(reverse("diagnosis:scan_detail", args=[by_other.scan.pk])).content.decode()
    assert 'id="performance-caution"' not in other_page  # its alert was cleared


def test_administrators_are_warned_when_more_uploads_than_expected_are_out_of_scope(client, organization):
    active = carded_version(is_active=True)
    results(organization, active, count=60, out_of_scope=3)
    client.force_login(admin_of(organization))

    page = client.get(URL).content.decode()

    assert "Out of scope in the last 4 weeks: 3 of 60" in " ".join(page.split())
    assert 'id="inputs-above"' in page
    banner = " ".join(page.split('id="inputs-above"')[1].split("</div>")[0].split())
    assert "3 of 60 results of 60 patients in the last 4 weeks were out of scope (5.0%; expected 0.5%)" in banner


def test_a_usual_share_of_out_of_scope_uploads_raises_no_warning(client, organization):
    active = carded_version(is_active=True)
    results(organization, active, count=100, out_of_scope=1)
    client.force_login(admin_of(organization))

    page = " ".join(client.get(URL).content.decode().split())

    assert ("1 of 100 results from 100 patients (1.0%, 95% interval 0.2%–5.4%, counting a patient's slices as the "
            "evidence they are together). Of slices like its training data it finds 0.5% so.") in page
    assert "Not more than expected." in page and 'id="inputs-above"' not in page


def test_the_worklist_warns_administrators_but_not_clinicians_of_unusual_uploads_once_judged(client, organization):
    active = carded_version(is_active=True, name="kidney-v9")
    results(organization, active, count=60, out_of_scope=3)
    earlier = carded_version()
    results(organization, earlier, count=60, out_of_scope=60)  # an earlier version's results do not count
    clinician = MembershipFactory(organization=organization).user
    client.force_login(admin_of(organization))
    before = client.get(reverse("diagnosis:home")).content.decode()

    services.inputs_alerts_judge()  # what Celery beat runs each hour
    warned = " ".join(client.get(reverse("diagnosis:home")).content.decode().split())
    client.force_login(clinician)
    unwarned = client.get(reverse("diagnosis:home")).content.decode()

    assert 'id="inputs-warning"' not in before  # the page warns of the alert, so it agrees with the notification
    assert 'id="inputs-warning"' in warned
    assert "3 of 60 results in the last 4 weeks were out of scope, more than its card expects" in warned
    assert 'id="inputs-warning"' not in unwarned


def test_the_worklist_does_not_warn_of_uploads_as_usual_another_organizations_or_an_earlier_versions_alert(
    client, organization, other_organization
):
    from diagnosis.models import InputsAlert

    active = carded_version(is_active=True)
    results(organization, active, count=100, out_of_scope=1)
    results(other_organization, active, count=60, out_of_scope=30)
    services.inputs_alerts_judge()
    InputsAlert.objects.create(organization=organization, model_version=carded_version(), out_of_scope=9, diagnosed=60)
    client.force_login(admin_of(organization))

    assert list(InputsAlert.objects.filter(model_version=active).values_list("organization", flat=True)) == [
        other_organization.pk]
    assert 'id="inputs-warning"' not in client.get(reverse("diagnosis:home")).content.decode()


def test_the_worklist_reads_the_alert_without_counting_results(client, organization, django_assert_num_queries):
    from diagnosis import selectors

    active = carded_version(is_active=True)
    results(organization, active, count=60, out_of_scope=3)
    services.inputs_alerts_judge()

    with django_assert_num_queries(1):  # the open alert only, however many results there are
        assert selectors.inputs_alert_open(organization=organization).out_of_scope == 3
