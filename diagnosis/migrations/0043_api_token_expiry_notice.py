"""Notice of API tokens about to expire: when each token's holder was told, and the new event for organizations
that chose every event there was."""

from django.db import migrations, models

EARLIER_EVENTS = {"diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored", "patient.merged",
                  "patient.unmerged", "model.below_card", "model.recovered", "model.inputs_unusual",
                  "model.inputs_usual"}
TOKEN_EVENTS = ["api_token.expiring"]


def add_token_events(apps, schema_editor):
    # As before: an organization that chose every event there was also wants to hear of expiring tokens; one that
    # chose some keeps its choice.
    Organization = apps.get_model("diagnosis", "Organization")
    for organization in Organization.objects.all():
        if EARLIER_EVENTS <= set(organization.webhook_events or []):
            organization.webhook_events = [*organization.webhook_events, *TOKEN_EVENTS]
            organization.save(update_fields=["webhook_events"])


def remove_token_events(apps, schema_editor):
    Organization = apps.get_model("diagnosis", "Organization")
    for organization in Organization.objects.all():
        kept = [event for event in organization.webhook_events or [] if event not in TOKEN_EVENTS]
        if kept != organization.webhook_events:
            organization.webhook_events = kept
            organization.save(update_fields=["webhook_events"])


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0042_pacs_oauth'),
    ]

    operations = [
        migrations.AddField(
            model_name='apitoken',
            name='expiry_notified_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(add_token_events, remove_token_events),
    ]
