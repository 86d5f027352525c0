"""API tokens kept as digests. Tokens that Django REST framework's authtoken app stored in clear move here as
digests, so hospital systems keep working with the tokens they hold, and the clear copies are deleted."""

import hashlib

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def tokens_to_digests(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return  # a deployment that never had the authtoken app
    ApiToken = apps.get_model("diagnosis", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        rows = cursor.fetchall()
        ApiToken.objects.bulk_create(
            ApiToken(user_id=user_id, digest=hashlib.sha256(key.encode("utf-8")).hexdigest(), prefix=key[:8],
                     created=created)
            for key, user_id, created in rows
        )
        # The table itself stays (the authtoken app's own migrations made it), empty.
        cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0036_pacs_rejection'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.CharField(max_length=64, unique=True)),
                ('prefix', models.CharField(max_length=8)),
                ('created', models.DateTimeField(default=django.utils.timezone.now)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='api_token', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        # Not reversible: the clear tokens are gone by design; undoing leaves the digests in place.
        migrations.RunPython(tokens_to_digests, migrations.RunPython.noop),
    ]
