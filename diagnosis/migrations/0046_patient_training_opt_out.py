"""A patient may refuse that their slices train the model: kept out of training exports from then on."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0045_access_whole_record_export'),
    ]

    operations = [
        migrations.AddField(
            model_name='patient',
            name='training_opt_out',
            field=models.BooleanField(default=False, help_text="The patient's reviewed slices are never used to train the model.", verbose_name='refused AI training'),
        ),
    ]
