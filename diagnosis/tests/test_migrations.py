import io

import pytest
from django.core.management import call_command


def test_the_models_and_the_migrations_agree(db):
    out = io.StringIO()

    # Exits with SystemExit(1) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=out)

    assert "No changes detected" in out.getvalue()


def _user_and_patient(apps):
    """A member and a patient in an earlier schema; with that schema's Scan model."""
    user = apps.get_model("auth", "User").objects.create(username="alice")
    organization = apps.get_model("diagnosis", "Organization").objects.create(name="St. Elsewhere", slug="st-elsewhere")
    patient = apps.get_model("diagnosis", "Patient").objects.create(organization=organization, mrn="1", name="A",
                                                                    birth_date="1980-01-01", sex="F")
    return apps.get_model("diagnosis", "Scan"), user, patient


def _refused_until_one_is_withdrawn(Scan, after, *, patient, kept, crossed, user, standing: int) -> None:
    """Migrating to ``after`` stops, naming the two scans of one slice and changing nothing, until one is withdrawn;
    then it and every later migration run."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    with pytest.raises(RuntimeError, match=rf"patient {patient.pk}: scans {kept.pk}, {crossed.pk}\)\. Withdraw all but one"):
        MigrationExecutor(connection).migrate(after)
    assert Scan.objects.filter(withdrawn_at__isnull=True).count() == standing

    Scan.objects.filter(pk=crossed.pk).update(withdrawn_at=timezone.now(), withdrawn_by=user)
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_scans_withdrawn_before_the_history_existed_get_their_withdrawal_as_its_first_entry(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    executor = MigrationExecutor(connection)
    before, after = [("diagnosis", "0019_organization_webhook_events")], [("diagnosis", "0020_scan_withdrawal_history")]
    executor.migrate(before)
    Scan, user, patient = _user_and_patient(executor.loader.project_state(before).apps)
    common = {"patient": patient, "image": "scans/a.png", "sha256": "0" * 64, "width": 1, "height": 1, "format": "png",
              "uploaded_by": user}
    withdrawn = Scan.objects.create(**common, withdrawn_at=timezone.now(), withdrawn_by=user, withdrawal_reason="wrong patient")
    Scan.objects.create(**common)

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps

    entries = list(new.get_model("diagnosis", "ScanWithdrawal").objects.values("scan_id", "reason", "restored_at"))
    assert entries == [{"scan_id": withdrawn.pk, "reason": "wrong patient", "restored_at": None}]
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


EARLIER_EVENTS = ["diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored"]
MERGE_EVENTS = ["patient.merged", "patient.unmerged"]
MODEL_EVENTS = ["model.below_card", "model.recovered"]
INPUTS_EVENTS = ["model.inputs_unusual", "model.inputs_usual"]


@pytest.mark.parametrize(("before", "after", "every", "added"), [
    ("0023_scan_dicom_patient_id", "0024_patient_merge", EARLIER_EVENTS, MERGE_EVENTS),
    ("0026_patient_distinct", "0027_performance_alert", EARLIER_EVENTS + MERGE_EVENTS, MODEL_EVENTS),
    ("0027_performance_alert", "0028_inputs_alert", EARLIER_EVENTS + MERGE_EVENTS + MODEL_EVENTS, INPUTS_EVENTS),
    ("0042_pacs_oauth", "0043_api_token_expiry_notice", EARLIER_EVENTS + MERGE_EVENTS + MODEL_EVENTS + INPUTS_EVENTS,
     ["api_token.expiring"]),
    ("0043_api_token_expiry_notice", "0044_patient_erasure",
     EARLIER_EVENTS + MERGE_EVENTS + MODEL_EVENTS + INPUTS_EVENTS + ["api_token.expiring"], ["patient.erased"]),
    ("0050_membership_by_groups", "0051_erasure_archive_given_up_event",
     EARLIER_EVENTS + MERGE_EVENTS + MODEL_EVENTS + INPUTS_EVENTS + ["api_token.expiring", "patient.erased"],
     ["erasure.archive_given_up"]),
])
def test_organizations_that_chose_every_event_are_sent_new_kinds_and_others_keep_their_choice(
    transactional_db, before, after, every, added
):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("diagnosis", before)])
    Organization = executor.loader.project_state([("diagnosis", before)]).apps.get_model("diagnosis", "Organization")
    everything = Organization.objects.create(name="A", slug="a", webhook_events=every)
    some = Organization.objects.create(name="B", slug="b", webhook_events=every[:-1])

    executor = MigrationExecutor(connection)
    executor.migrate([("diagnosis", after)])
    new = executor.loader.project_state([("diagnosis", after)]).apps.get_model("diagnosis", "Organization")

    assert new.objects.get(pk=everything.pk).webhook_events == [*every, *added]
    assert new.objects.get(pk=some.pk).webhook_events == every[:-1]
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_slices_on_record_twice_stop_the_constraint_naming_the_scans_and_nothing_changes(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    before, after = [("diagnosis", "0029_dicom_store_refusal")], [("diagnosis", "0030_scan_slice_once_per_patient")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    Scan, user, patient = _user_and_patient(executor.loader.project_state(before).apps)
    common = {"patient": patient, "sha256": "0" * 64, "width": 1, "height": 1, "format": "PNG", "uploaded_by": user}
    kept, crossed = Scan.objects.create(image="scans/a.png", **common), Scan.objects.create(image="scans/b.png", **common)
    Scan.objects.create(image="scans/c.png", withdrawn_at=timezone.now(), withdrawn_by=user, **common)

    _refused_until_one_is_withdrawn(Scan, after, patient=patient, kept=kept, crossed=crossed, user=user, standing=2)


def test_an_instance_on_record_twice_stops_its_constraint_naming_the_scans_while_slices_without_one_pass(
        transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("diagnosis", "0031_scan_dicom_identifiers")], [("diagnosis", "0032_scan_instance_once_per_patient")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    Scan, user, patient = _user_and_patient(executor.loader.project_state(before).apps)
    common = {"patient": patient, "width": 1, "height": 1, "format": "PNG", "uploaded_by": user}
    # Two PNG uploads (no instance UID) are two slices; one instance sent twice with other pixels is one.
    for name in "ab":
        Scan.objects.create(image=f"scans/{name}.png", sha256=name * 64, **common)
    kept, crossed = (Scan.objects.create(image=f"scans/{name}.png", sha256=name * 64, dicom_instance_uid="1.2.3.4",
                                         **common) for name in "cd")

    _refused_until_one_is_withdrawn(Scan, after, patient=patient, kept=kept, crossed=crossed, user=user, standing=4)


def test_tokens_kept_in_clear_by_an_earlier_version_keep_working_and_their_clear_copies_are_deleted(transactional_db):
    """Before digests, Django REST framework's authtoken app kept each token in clear in its own table."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.test import Client

    before, after = [("diagnosis", "0036_pacs_rejection")], [("diagnosis", "0037_api_token")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("auth", "User").objects.create(username="his")
    organization = old.get_model("diagnosis", "Organization").objects.create(name="St. Elsewhere", slug="st-elsewhere")
    old.get_model("diagnosis", "Membership").objects.create(user=user, organization=organization, role="clinician")
    key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
    with connection.cursor() as cursor:  # the table as the authtoken app's migrations made it
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp with time zone "
                       "NOT NULL, user_id integer NOT NULL UNIQUE)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [key, "2026-01-02T03:04:05Z", user.pk])
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0
        from diagnosis.models import ApiToken

        token = ApiToken.objects.get()
        assert (token.user_id, token.prefix, token.created.year) == (user.pk, key[:8], 2026)
        assert Client().get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")


def test_credentials_kept_in_clear_by_an_earlier_version_are_sealed_and_opened_again_when_undone(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("diagnosis", "0037_api_token")], [("diagnosis", "0038_sealed_credentials")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    Organization = executor.loader.project_state(before).apps.get_model("diagnosis", "Organization")
    organization = Organization.objects.create(name="A", slug="a", pacs_url="https://pacs.example.org/dicom-web",
                                               pacs_username="ai", pacs_password="clear-pw", webhook_secret="s" * 64)

    def stored() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pacs_password, webhook_secret FROM diagnosis_organization WHERE id = %s",
                           [organization.pk])
            return cursor.fetchone()

    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        assert all(value.startswith("sealed:v1:") for value in stored())
        sealed = executor.loader.project_state(after).apps.get_model("diagnosis", "Organization").objects.get()
        assert (sealed.pacs_password, sealed.webhook_secret) == ("clear-pw", "s" * 64)

        executor = MigrationExecutor(connection)
        executor.migrate(before)
        assert stored() == ("clear-pw", "s" * 64)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_authenticator_apps_set_up_before_sealing_keep_working_with_their_secret_sealed(transactional_db):
    import time

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from .totp import totp

    before, after = [("diagnosis", "0038_sealed_credentials")], [("diagnosis", "0039_authenticator_sealed")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state([*before, ("otp_totp", "0003_add_timestamps")]).apps
    user = old.get_model("auth", "User").objects.create(username="his")
    key = bytes(range(20))
    now = int(time.time() // 30)
    old.get_model("otp_totp", "TOTPDevice").objects.create(user=user, name="authenticator app", confirmed=True,
                                                           key=key.hex(), last_t=now, drift=0)
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        from django.contrib.auth import get_user_model
        from django.core.exceptions import ValidationError
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from diagnosis import services
        from diagnosis.models import Authenticator

        assert not TOTPDevice.objects.exists()  # no copy in clear left
        device = Authenticator.objects.get()
        assert (device.user_id, device.confirmed, device.bin_key, device.last_t) == (user.pk, True, key, now)
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM diagnosis_authenticator")
            assert cursor.fetchone()[0].startswith("sealed:v1:")
        with pytest.raises(ValidationError, match="wrong or has expired"):  # the code already used stays used
            services.two_factor_check(user=get_user_model().objects.get(pk=user.pk), token=totp(key, now * 30))
        time.sleep(1.1)  # the wrong code's throttling
        assert services.two_factor_check(user=get_user_model().objects.get(pk=user.pk),
                                         token=totp(key, now * 30 + 30)).pk == device.pk

        executor = MigrationExecutor(connection)
        executor.migrate(before)
        assert old.get_model("otp_totp", "TOTPDevice").objects.get().key == key.hex()
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
