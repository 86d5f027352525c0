import io

from django.core.management import call_command


def test_the_models_and_the_migrations_agree(db):
    out = io.StringIO()

    # Exits with SystemExit(1) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=out)

    assert "No changes detected" in out.getvalue()


def test_scans_withdrawn_before_the_history_existed_get_their_withdrawal_as_its_first_entry(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    executor = MigrationExecutor(connection)
    before, after = [("diagnosis", "0019_organization_webhook_events")], [("diagnosis", "0020_scan_withdrawal_history")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("auth", "User").objects.create(username="alice")
    organization = old.get_model("diagnosis", "Organization").objects.create(name="St. Elsewhere", slug="st-elsewhere")
    patient = old.get_model("diagnosis", "Patient").objects.create(organization=organization, mrn="1", name="A",
                                                                   birth_date="1980-01-01", sex="F")
    Scan = old.get_model("diagnosis", "Scan")
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


def test_organizations_that_chose_every_event_are_told_of_merges_and_others_keep_their_choice(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before, after = [("diagnosis", "0023_scan_dicom_patient_id")], [("diagnosis", "0024_patient_merge")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Organization = old.get_model("diagnosis", "Organization")
    every = ["diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored"]
    everything = Organization.objects.create(name="A", slug="a", webhook_events=every)
    reviews_only = Organization.objects.create(name="B", slug="b", webhook_events=["review.saved"])

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("diagnosis", "Organization")

    assert new.objects.get(pk=everything.pk).webhook_events == [*every, "patient.merged", "patient.unmerged"]
    assert new.objects.get(pk=reviews_only.pk).webhook_events == ["review.saved"]
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_organizations_that_chose_every_event_are_told_when_the_model_slips_and_others_keep_their_choice(
    transactional_db
):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before, after = [("diagnosis", "0026_patient_distinct")], [("diagnosis", "0027_performance_alert")]
    executor.migrate(before)
    Organization = executor.loader.project_state(before).apps.get_model("diagnosis", "Organization")
    every = ["diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored", "patient.merged", "patient.unmerged"]
    everything = Organization.objects.create(name="A", slug="a", webhook_events=every)
    some = Organization.objects.create(name="B", slug="b", webhook_events=every[:4])

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("diagnosis", "Organization")

    assert new.objects.get(pk=everything.pk).webhook_events == [*every, "model.below_card", "model.recovered"]
    assert new.objects.get(pk=some.pk).webhook_events == every[:4]
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_organizations_that_chose_every_event_are_told_of_unusual_uploads_and_others_keep_their_choice(
    transactional_db
):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before, after = [("diagnosis", "0027_performance_alert")], [("diagnosis", "0028_inputs_alert")]
    executor.migrate(before)
    Organization = executor.loader.project_state(before).apps.get_model("diagnosis", "Organization")
    every = ["diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored", "patient.merged",
             "patient.unmerged", "model.below_card", "model.recovered"]
    everything = Organization.objects.create(name="A", slug="a", webhook_events=every)
    no_model_events = Organization.objects.create(name="B", slug="b", webhook_events=every[:6])

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("diagnosis", "Organization")

    assert new.objects.get(pk=everything.pk).webhook_events == [*every, "model.inputs_unusual", "model.inputs_usual"]
    assert new.objects.get(pk=no_model_events.pk).webhook_events == every[:6]
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
