"""Authenticator apps' secrets sealed: each django-otp TOTP device moves into an Authenticator, its secret
sealed, with its drift, last code's time step and throttling; the device with the secret in clear is deleted.
Members keep their app. A login verified with the old device is asked for a code once more."""

import diagnosis.models.accounts
import diagnosis.sealed
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


FIELDS = ["name", "confirmed", "throttling_failure_timestamp", "throttling_failure_count", "last_used_at", "step", "t0",
          "digits", "tolerance", "drift", "last_t", "user_id"]


def seal_devices(apps, schema_editor):
    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    Authenticator = apps.get_model("diagnosis", "Authenticator")
    for old in TOTPDevice.objects.order_by("pk"):
        new = Authenticator.objects.create(secret=old.key, **{name: getattr(old, name) for name in FIELDS})
        # created_at fills itself in on creation: the device's own date is put back after.
        Authenticator.objects.filter(pk=new.pk).update(created_at=old.created_at)
    TOTPDevice.objects.all().delete()


def unseal_devices(apps, schema_editor):
    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    Authenticator = apps.get_model("diagnosis", "Authenticator")
    for new in Authenticator.objects.order_by("pk"):
        if not new.secret:
            raise RuntimeError(f"The secret of authenticator {new.pk} does not open with this server's keys: set "
                               "KIDNEYWEB_CREDENTIALS_KEY as it was before undoing this migration.")
        old = TOTPDevice.objects.create(key=new.secret, **{name: getattr(new, name) for name in FIELDS})
        TOTPDevice.objects.filter(pk=old.pk).update(created_at=new.created_at)


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0038_sealed_credentials'),
        ('otp_totp', '0003_add_timestamps'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Authenticator',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='The human-readable name of this device.', max_length=64)),
                ('confirmed', models.BooleanField(default=True, help_text='Is this device ready for use?')),
                ('throttling_failure_timestamp', models.DateTimeField(blank=True, default=None, help_text='A timestamp of the last failed verification attempt. Null if last attempt succeeded.', null=True)),
                ('throttling_failure_count', models.PositiveIntegerField(default=0, help_text='Number of successive failed attempts.')),
                ('created_at', models.DateTimeField(auto_now_add=True, help_text='The date and time when this device was initially created in the system.', null=True)),
                ('last_used_at', models.DateTimeField(blank=True, help_text='The most recent date and time this device was used.', null=True)),
                ('secret', diagnosis.sealed.SealedTextField(default=diagnosis.models.accounts.authenticator_secret, label='authenticator secret')),
                ('step', models.PositiveSmallIntegerField(default=30)),
                ('t0', models.BigIntegerField(default=0)),
                ('digits', models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)),
                ('tolerance', models.PositiveSmallIntegerField(default=1)),
                ('drift', models.SmallIntegerField(default=0)),
                ('last_t', models.BigIntegerField(default=-1)),
                ('user', models.ForeignKey(help_text='The user that this device belongs to.', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'authenticator app',
                'abstract': False,
            },
        ),
        migrations.RunPython(seal_devices, unseal_devices),
    ]
