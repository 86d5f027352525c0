"""The archive's password and the notification secret, kept until now as given, sealed (diagnosis.sealed).

Read and written with SQL, not the model: the field now opens what it reads, and what is there is in clear.
"""

import diagnosis.sealed
from django.db import migrations

COLUMNS = {"pacs_password": "archive password", "webhook_secret": "notification secret"}


def seal_existing(apps, schema_editor):
    _rewrite(schema_editor, lambda value, label: diagnosis.sealed.seal(value, label=label)
             if not diagnosis.sealed.is_sealed(value) else value)


def open_existing(apps, schema_editor):
    def opened(value, label):
        clear = diagnosis.sealed.open_sealed(value, label=label)
        if isinstance(clear, diagnosis.sealed.Unreadable):
            raise RuntimeError(clear.reason)
        return clear

    _rewrite(schema_editor, opened)


def _rewrite(schema_editor, change):
    table = schema_editor.quote_name("diagnosis_organization")
    with schema_editor.connection.cursor() as cursor:
        for column, label in COLUMNS.items():
            name = schema_editor.quote_name(column)
            cursor.execute(f"SELECT id, {name} FROM {table} WHERE {name} <> ''")
            for pk, value in cursor.fetchall():
                cursor.execute(f"UPDATE {table} SET {name} = %s WHERE id = %s", [change(value, label), pk])


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0037_api_token'),
    ]

    operations = [
        migrations.AlterField(
            model_name='organization',
            name='pacs_password',
            field=diagnosis.sealed.SealedTextField(blank=True, label='archive password'),
        ),
        migrations.AlterField(
            model_name='organization',
            name='webhook_secret',
            field=diagnosis.sealed.SealedTextField(blank=True, label='notification secret'),
        ),
        # Back to clear text before the columns shrink again, and only where every value still opens.
        migrations.RunPython(seal_existing, open_existing),
    ]
