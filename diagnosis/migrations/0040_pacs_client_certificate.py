"""kidneyweb's TLS client certificate for archives that require one: the chain public, the key sealed."""

import diagnosis.sealed
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0039_authenticator_sealed'),
    ]

    operations = [
        migrations.AddField(
            model_name='organization',
            name='pacs_client_certificate',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='organization',
            name='pacs_client_key',
            field=diagnosis.sealed.SealedTextField(blank=True, label='archive client key'),
        ),
    ]
