import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis import services
from diagnosis.models import InputsAlert, ModelVersion, PerformanceAlert

from .factories import MembershipFactory, ModelVersionFactory, PredictionFactory, ReviewFactory


@pytest.fixture
def admin_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.org", "pw-root-123"))
    return client


@pytest.mark.parametrize("model", ["organization", "membership", "patient", "scan", "prediction", "modelversion", "review",
                                   "patientmerge", "patientdistinct", "performancealert", "inputsalert",
                                   "apitoken", "authenticator"])
def test_every_model_has_a_working_admin_list_and_detail(admin_client, model):
    prediction = PredictionFactory()
    objects = {
        "organization": prediction.scan.patient.organization,
        "membership": MembershipFactory(),
        "patient": prediction.scan.patient,
        "scan": prediction.scan,
        "prediction": prediction,
        "modelversion": prediction.model_version,
        "review": ReviewFactory(),
        "patientmerge": _merge(),
        "patientdistinct": _two_people(),
        "performancealert": PerformanceAlert.objects.create(organization=prediction.scan.patient.organization,
                                                            model_version=prediction.model_version, measures=["Stone found"]),
        "inputsalert": InputsAlert.objects.create(organization=prediction.scan.patient.organization,
                                                  model_version=prediction.model_version, out_of_scope=3, diagnosed=60),
        "apitoken": _token(),
        "authenticator": services.two_factor_setup_start(user=MembershipFactory().user),
    }

    assert admin_client.get(reverse(f"admin:diagnosis_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:diagnosis_{model}_change", args=[objects[model].pk])).status_code == 200


def test_the_admin_shows_neither_the_archive_password_nor_the_notification_secret(admin_client):
    boss = MembershipFactory(role="admin")
    organization = services.pacs_set(organization=boss.organization, url="https://pacs.example.org/dicom-web",
                                     username="ai", password="pw-of-the-archive", by=boss.user)
    secret = services.webhook_set(organization=organization, url="https://ris.example.org/hook", by=boss.user)

    page = admin_client.get(reverse("admin:diagnosis_organization_change", args=[organization.pk])).content.decode()

    assert "pacs.example.org" in page and "pw-of-the-archive" not in page and secret not in page
    assert "sealed:v1:" not in page


def test_the_admin_offers_no_authenticator_with_its_secret_in_clear(admin_client):
    from django.contrib import admin
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = services.two_factor_setup_start(user=MembershipFactory().user)
    page = admin_client.get(reverse("admin:diagnosis_authenticator_change", args=[device.pk])).content.decode()

    assert not admin.site.is_registered(TOTPDevice)
    assert device.secret not in page and "sealed:v1:" not in page


def _token():
    from diagnosis.models import ApiToken

    services.api_token_rotate(user=MembershipFactory().user)
    return ApiToken.objects.get()


def test_the_admin_lists_api_tokens_by_their_prefix_without_their_digest(admin_client):
    from diagnosis.models import ApiToken

    key = services.api_token_rotate(user=MembershipFactory(user__username="ris").user)
    token = ApiToken.objects.get()

    page = admin_client.get(reverse("admin:diagnosis_apitoken_change", args=[token.pk])).content.decode()
    listing = admin_client.get(reverse("admin:diagnosis_apitoken_changelist")).content.decode()

    assert key[:8] in listing and "ris" in listing
    assert token.digest not in page and key not in page and key not in listing
    assert admin_client.get(reverse("admin:diagnosis_apitoken_add")).status_code == 403


def _merge():
    from .factories import PatientFactory

    boss = MembershipFactory(role="admin")
    duplicate = PatientFactory(organization=boss.organization)
    into = PatientFactory(organization=boss.organization, birth_date=duplicate.birth_date)
    return services.patient_merge(duplicate=duplicate, into=into, user=boss.user, reason="registered twice")


def _two_people():
    from .factories import PatientFactory

    boss = MembershipFactory(role="admin")
    first, second = (PatientFactory(organization=boss.organization) for _ in range(2))
    return services.patient_pair_mark_distinct(patient=first, other=second, user=boss.user)


def test_the_activate_action_switches_the_active_model_version(admin_client):
    old = ModelVersionFactory(is_active=True)
    new = ModelVersionFactory()

    admin_client.post(
        reverse("admin:diagnosis_modelversion_changelist"),
        {"action": "activate", "_selected_action": [new.pk]},
    )

    assert list(ModelVersion.objects.filter(is_active=True)) == [new]
    old.refresh_from_db()
    assert not old.is_active


def test_the_admin_shows_a_patients_corrections_and_does_not_edit_details_or_merge_around_them(admin_client):
    from diagnosis import services
    from diagnosis.models import Patient

    from .factories import PatientFactory, UserFactory

    patient = PatientFactory(name="Ada Lovelce", mrn="A-1")
    services.patient_update(patient=patient, changed_by=UserFactory(), mrn="A-1", name="Ada Lovelace",
                            birth_date=patient.birth_date, sex=patient.sex)
    url = reverse("admin:diagnosis_patient_change", args=[patient.pk])

    page = admin_client.get(url).content.decode()
    # A complete form: were the details editable here, this post would change them.
    change = patient.changes.get()
    other = PatientFactory(organization=patient.organization)
    assert 'name="merged_into' not in page
    response = admin_client.post(url, {
        "organization": patient.organization_id, "name": "Someone Else", "mrn": "Z-9", "birth_date": "1970-01-01",
        "sex": "M", "merged_into": other.pk, "training_opt_out": "on", "changes-TOTAL_FORMS": "1", "changes-INITIAL_FORMS": "1", "changes-MIN_NUM_FORMS": "0",
        "changes-MAX_NUM_FORMS": "1000", "changes-0-id": change.pk, "changes-0-patient": patient.pk})

    assert response.status_code == 302  # saved, with nothing to save
    assert "Ada Lovelce" in page  # the recorded old value
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.name, stored.mrn, stored.merged_into, stored.training_opt_out) == ("Ada Lovelace", "A-1", None, False)


def test_staff_changes_are_listed_read_only(admin_client, organization, boss):
    services.member_create(organization=organization, username="dr.lee", by=boss)
    change_list = reverse("admin:diagnosis_staffchange_changelist")

    page = admin_client.get(change_list).content.decode()

    assert "dr.lee" in page and "Added" in page
    change = organization.staff_changes.get()
    assert admin_client.post(reverse("admin:diagnosis_staffchange_delete", args=[change.pk]), {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:diagnosis_staffchange_add")).status_code == 403
    assert organization.staff_changes.count() == 1


def test_notifications_are_listed_read_only_and_the_secret_is_not_shown(admin_client, organization, boss):
    from diagnosis.models import WebhookDelivery

    secret = services.webhook_set(organization=organization, url="https://ris.example.org/hook", by=boss)
    delivery = WebhookDelivery.objects.create(organization=organization, event="diagnosis.finished",
                                              url="https://ris.example.org/hook", payload={"scan": {"id": 1}})

    page = admin_client.get(reverse("admin:diagnosis_organization_change", args=[organization.pk])).content.decode()
    assert secret not in page and "https://ris.example.org/hook" in page
    assert admin_client.get(reverse("admin:diagnosis_webhookdelivery_changelist")).status_code == 200
    detail = admin_client.get(reverse("admin:diagnosis_webhookdelivery_change", args=[delivery.pk]))
    assert detail.status_code == 200 and 'type="submit"' not in detail.content.decode().split('id="content"')[1]


def test_the_admin_does_not_withdraw_or_refile_a_scan_around_its_services(admin_client):
    from diagnosis.models import Scan

    from .factories import ScanFactory

    scan, other = ScanFactory(), ScanFactory()
    url = reverse("admin:diagnosis_scan_change", args=[scan.pk])

    page = admin_client.get(url).content.decode()
    for field in ("withdrawn_at", "withdrawn_by", "withdrawal_reason", "refiled_from"):
        assert f'name="{field}' not in page
    admin_client.post(url, {"withdrawal_reason": "edited", "refiled_from": other.pk, "withdrawn_by": other.uploaded_by_id,
                            "predictions-TOTAL_FORMS": 0, "predictions-INITIAL_FORMS": 0})
    scan = Scan.objects.get(pk=scan.pk)
    assert (scan.withdrawal_reason, scan.refiled_from_id, scan.withdrawn_by_id) == ("", None, None)
