"""End to end: a standard DICOMweb client (dicomweb-client, as archives and research tools use it) stores a real CT
slice, sent as a scanner's DICOM instance, on a running server; a real Celery worker diagnoses it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from diagnosis import services
from diagnosis.models import Prediction, Scan
from mlcore.dicom import DEFAULT_CT_WINDOW
from mlcore.images import load_image
from mlcore.synthetic import dicom_bytes

from .celery_worker import celery_worker, require_shipped_model, wait_until_final
from .factories import PatientFactory

pytestmark = pytest.mark.integration


def scanner_instance(path: Path, patient_id: str):
    """The exported slice as a scanner stores it: Hounsfield units + 1024, 16 bits, with the abdominal window."""
    import pydicom

    centre, width = DEFAULT_CT_WINDOW
    hounsfield = load_image(path)[..., 0].astype(float) / 255 * width + centre - width / 2
    data = dicom_bytes(np.round(hounsfield + 1024).astype(np.uint16), patient_id=patient_id)
    return pydicom.dcmread(io.BytesIO(data))


def test_a_dicomweb_client_stores_a_real_ct_instance_that_a_real_worker_diagnoses(
    live_server, ct_slice, organization, clinician, inference_queue, tmp_path
):
    from dicomweb_client.api import DICOMwebClient

    model = require_shipped_model()
    version = services.model_version_register(path=model, activate=True)
    patient = PatientFactory(organization=organization, mrn="MRN-0042")
    token = services.api_token_rotate(user=clinician)
    dataset = scanner_instance(ct_slice, "MRN-0042")
    archive = DICOMwebClient(url=f"{live_server.url}/api/v1/dicomweb", headers={"Authorization": f"Token {token}"})

    with celery_worker(model, tmp_path / "worker.log") as process:
        answer = archive.store_instances(datasets=[dataset])
        again = archive.store_instances(datasets=[dataset])  # an archive's retry
        into_study = archive.store_instances(datasets=[dataset], study_instance_uid=dataset.StudyInstanceUID)
        [stored] = answer.ReferencedSOPSequence
        scan = Scan.objects.get(pk=int(stored.RetrieveURL.rstrip("/").rsplit("/", 1)[1]))
        [prediction] = wait_until_final([scan.latest_prediction.pk], process, tmp_path / "worker.log")

    assert stored.ReferencedSOPInstanceUID == dataset.SOPInstanceUID
    assert again.ReferencedSOPSequence[0].RetrieveURL == stored.RetrieveURL and Scan.objects.count() == 1
    assert into_study.ReferencedSOPSequence[0].RetrieveURL == stored.RetrieveURL
    assert "FailedSOPSequence" not in answer
    assert scan.patient == patient and scan.format == "PNG"
    assert (scan.dicom_study_uid, scan.dicom_instance_uid) == (dataset.StudyInstanceUID, dataset.SOPInstanceUID)
    assert prediction.status == Prediction.Status.DONE, prediction.failure_reason
    assert prediction.label in version.class_names and prediction.model_version == version


def test_a_dicomweb_client_storing_into_a_study_is_refused_an_instance_of_another_study(
    live_server, ct_slice, organization, clinician, active_model_version
):
    from dicomweb_client.api import DICOMwebClient
    from requests import HTTPError

    PatientFactory(organization=organization, mrn="MRN-0042")
    token = services.api_token_rotate(user=clinician)
    dataset = scanner_instance(ct_slice, "MRN-0042")
    archive = DICOMwebClient(url=f"{live_server.url}/api/v1/dicomweb", headers={"Authorization": f"Token {token}"})

    with pytest.raises(HTTPError) as refused:
        archive.store_instances(datasets=[dataset], study_instance_uid="1.2.826.0.1.3680043.8.498.99")

    assert refused.value.response.status_code == 409
    assert "Of another study than the one addressed" in refused.value.response.text
    assert not Scan.objects.exists()
