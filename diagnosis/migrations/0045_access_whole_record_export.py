"""The access log names a new opening: the whole record exported (a subject access request)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0044_patient_erasure'),
    ]

    operations = [
        migrations.AlterField(
            model_name='patientaccess',
            name='what',
            field=models.CharField(choices=[('patient', 'Patient record'), ('scan', 'Scan and result'), ('image', 'Scan image'), ('report', 'PDF report'), ('fhir', 'FHIR export'), ('dicom', 'DICOM export'), ('export', 'Whole record export')], max_length=16),
        ),
    ]
