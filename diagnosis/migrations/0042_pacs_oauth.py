"""OAuth 2.0 client credentials for DICOMweb archives behind an authorization server; the secret sealed."""

import diagnosis.sealed
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0041_api_token_lifetime'),
    ]

    operations = [
        migrations.AddField(
            model_name='organization',
            name='pacs_client_id',
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name='organization',
            name='pacs_client_secret',
            field=diagnosis.sealed.SealedTextField(blank=True, label='archive OAuth client secret'),
        ),
        migrations.AddField(
            model_name='organization',
            name='pacs_scope',
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name='organization',
            name='pacs_token_url',
            field=models.CharField(blank=True, max_length=500, verbose_name="archive's token address (OAuth 2.0)"),
        ),
    ]
