"""`manage.py import_dicom`: DICOM files and folders (an exported study, a CD) filed as the DICOMweb store files
them, each for the patient its header names; importing again doubles nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from diagnosis.models import DicomStoreRefusal, Scan

from .factories import ModelVersionFactory, PatientFactory
from .test_api_dicomweb_store import slice_for


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("import_dicom", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def cd(tmp_path):
    """A CD's folders: two patients' slices, its DICOMDIR index and a text file."""
    (tmp_path / "DICOM" / "ST1").mkdir(parents=True)
    (tmp_path / "DICOM" / "ST1" / "IM1").write_bytes(slice_for("MRN-0042"))
    (tmp_path / "DICOM" / "ST1" / "IM2").write_bytes(slice_for("MRN-0043", seed=1))
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM index of the CD")
    (tmp_path / "README.TXT").write_text("Viewer for Windows")
    return tmp_path


def test_a_cds_slices_are_filed_for_the_patients_their_headers_name_and_a_second_import_doubles_nothing(
    cd, organization, clinician, active_model_version
):
    ada = PatientFactory(organization=organization, mrn="MRN-0042")
    PatientFactory(organization=organization, mrn="MRN-0043")

    with pytest.raises(CommandError, match="1 file\\(s\\) refused; the others were filed"):
        run(clinician.username, str(cd))

    assert Scan.objects.count() == 2 and Scan.objects.filter(patient=ada, uploaded_by=clinician).count() == 1
    assert DicomStoreRefusal.objects.get().reason == "Not a DICOM Part 10 instance (no DICM preamble)."
    (cd / "README.TXT").unlink()
    stdout, stderr = run(clinician.username, str(cd / "DICOM"), str(cd / "DICOMDIR"))
    assert stdout.count("already stored as scan") == 2 and Scan.objects.count() == 2
    assert stderr.strip() == "0 stored, 2 already stored, 0 refused, 1 skipped."


def test_an_unknown_uploader_a_missing_path_or_no_active_model_is_refused_before_anything_is_filed(
    cd, organization, clinician, db
):
    PatientFactory(organization=organization, mrn="MRN-0042")
    with pytest.raises(CommandError, match="No diagnosis model is active"):
        run(clinician.username, str(cd))
    ModelVersionFactory(is_active=True)
    with pytest.raises(CommandError, match="No member named 'nobody'"):
        run("nobody", str(cd))
    with pytest.raises(CommandError, match="No such file or folder: .*/elsewhere"):
        run(clinician.username, str(cd / "elsewhere"))
    assert not Scan.objects.exists()
