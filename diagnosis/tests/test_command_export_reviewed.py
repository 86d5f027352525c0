import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from mlcore.data import read_extra_manifest

from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory


def test_export_reviewed_prints_the_manifest_path_last(organization, tmp_path):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    ReviewFactory(prediction=DonePredictionFactory(scan=scan, label="Stone"), label="Tumor")
    out = io.StringIO()

    call_command("export_reviewed", organization.slug, str(tmp_path / "export"), stdout=out, stderr=io.StringIO())

    manifest = out.getvalue().strip().splitlines()[-1]
    assert [(r.label, r.path.name) for r in read_extra_manifest(Path(manifest))] == [
        ("Tumor", f"Tumor-{scan.pk}.png")
    ]


def test_export_reviewed_refuses_an_unknown_organization(db, tmp_path):
    with pytest.raises(CommandError, match="No organization named 'Nowhere'"):
        call_command("export_reviewed", "Nowhere", str(tmp_path))
