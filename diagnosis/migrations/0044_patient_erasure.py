"""Erasing a patient's data: the record of each erasure, access log entries that outlive the record they name, and
the new event for organizations that chose every event there was."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


EARLIER_EVENTS = {"diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored", "patient.merged",
                  "patient.unmerged", "model.below_card", "model.recovered", "model.inputs_unusual",
                  "model.inputs_usual", "api_token.expiring"}
ERASURE_EVENTS = ["patient.erased"]


def add_erasure_events(apps, schema_editor):
    # An organization that chose every event there was also wants to hear of erasures; one that chose some keeps
    # its choice.
    Organization = apps.get_model("diagnosis", "Organization")
    for organization in Organization.objects.all():
        if EARLIER_EVENTS <= set(organization.webhook_events or []):
            organization.webhook_events = [*organization.webhook_events, *ERASURE_EVENTS]
            organization.save(update_fields=["webhook_events"])


def remove_erasure_events(apps, schema_editor):
    Organization = apps.get_model("diagnosis", "Organization")
    for organization in Organization.objects.all():
        kept = [event for event in organization.webhook_events or [] if event not in ERASURE_EVENTS]
        if kept != organization.webhook_events:
            organization.webhook_events = kept
            organization.save(update_fields=["webhook_events"])


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0043_api_token_expiry_notice'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='patientaccess',
            name='patient',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='accesses', to='diagnosis.patient'),
        ),
        migrations.AlterField(
            model_name='patientaccess',
            name='scan',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='accesses', to='diagnosis.scan'),
        ),
        migrations.CreateModel(
            name='PatientErasure',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('patient_id', models.PositiveBigIntegerField(unique=True, verbose_name='former patient id')),
                ('merged_ids', models.JSONField(blank=True, default=list, help_text='Ids of the records merged into it, erased with it.')),
                ('erased_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('reason', models.CharField(max_length=200)),
                ('scans', models.PositiveIntegerField(default=0, help_text='Scans deleted, with their results and reviews.')),
                ('reviews', models.PositiveIntegerField(default=0)),
                ('archive_results', models.PositiveIntegerField(default=0)),
                ('files', models.JSONField(blank=True, default=list)),
                ('files_removed_at', models.DateTimeField(blank=True, null=True)),
                ('erased_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('erased_by_name', models.CharField(max_length=150, verbose_name='erased by')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='erasures', to='diagnosis.organization')),
            ],
            options={
                'ordering': ['-erased_at', '-id'],
            },
        ),
        migrations.AddField(
            model_name='patientaccess',
            name='erasure',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='accesses', to='diagnosis.patienterasure'),
        ),
        migrations.AddIndex(
            model_name='patienterasure',
            index=models.Index(fields=['organization', '-erased_at'], name='erasure_org_erased_idx'),
        ),
        migrations.RunPython(add_erasure_events, remove_erasure_events),
    ]
