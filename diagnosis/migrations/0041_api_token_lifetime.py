"""An organization's lifetime for API tokens (none until set)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0040_pacs_client_certificate'),
    ]

    operations = [
        migrations.AddField(
            model_name='organization',
            name='api_token_days',
            field=models.PositiveSmallIntegerField(blank=True, help_text='API tokens stop working this many days after they were issued; empty: never.', null=True),
        ),
    ]
