from django.conf import settings
from django.db import migrations, models
from django.db.models import Count


def refuse_slices_on_record_twice(apps, schema_editor):
    """The constraint cannot be added while a slice stands twice for a patient (two sends that crossed before it
    existed). Which of the two to withdraw is a clinician's choice, not a migration's: name them and stop."""
    Scan = apps.get_model("diagnosis", "Scan")
    twice = (Scan.objects.filter(withdrawn_at__isnull=True).values("patient_id", "sha256")
             .annotate(scans=Count("id")).filter(scans__gt=1).order_by("patient_id"))
    if not twice:
        return
    lines = []
    for group in twice:
        ids = sorted(Scan.objects.filter(withdrawn_at__isnull=True, patient_id=group["patient_id"],
                                         sha256=group["sha256"]).values_list("id", flat=True))
        lines.append(f"patient {group['patient_id']}: scans {', '.join(map(str, ids))}")
    raise RuntimeError(
        "The same slice is on record more than once for a patient (" + "; ".join(lines) + "). Withdraw all but one "
        "of each (\"Withdraw this scan\" on its page, as uploaded twice), then migrate again.")


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0029_dicom_store_refusal'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(refuse_slices_on_record_twice, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='scan',
            constraint=models.UniqueConstraint(condition=models.Q(('withdrawn_at__isnull', True)), fields=('patient', 'sha256'), name='scan_slice_once_per_patient'),
        ),
    ]
