"""The new event erasure.archive_given_up, for organizations that chose every event there was."""

from django.db import migrations

EARLIER_EVENTS = {"diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored", "patient.merged",
                  "patient.unmerged", "patient.erased", "model.below_card", "model.recovered",
                  "model.inputs_unusual", "model.inputs_usual", "api_token.expiring"}
NEW_EVENTS = ["erasure.archive_given_up"]


def add_events(apps, schema_editor):
    # An organization that chose every event there was also wants to hear of this one; one that chose some keeps
    # its choice.
    Organization = apps.get_model("diagnosis", "Organization")
    for organization in Organization.objects.all():
        if EARLIER_EVENTS <= set(organization.webhook_events or []):
            organization.webhook_events = [*organization.webhook_events, *NEW_EVENTS]
            organization.save(update_fields=["webhook_events"])


def remove_events(apps, schema_editor):
    Organization = apps.get_model("diagnosis", "Organization")
    for organization in Organization.objects.all():
        kept = [event for event in organization.webhook_events or [] if event not in NEW_EVENTS]
        if kept != organization.webhook_events:
            organization.webhook_events = kept
            organization.save(update_fields=["webhook_events"])


class Migration(migrations.Migration):

    dependencies = [
        ("diagnosis", "0050_membership_by_groups"),
    ]

    operations = [
        migrations.RunPython(add_events, remove_events),
    ]
