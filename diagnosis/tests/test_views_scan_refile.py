"""Filing a slice for the right patient on the scan's page: with the withdrawal (an MRN beside the reason),
or afterwards from the withdrawn scan; each scan's page then links to the other."""

from django.urls import reverse

from diagnosis.models import PatientAccess, Scan

from .factories import DonePredictionFactory, PatientFactory, ScanFactory


def _scan(organization, uploader, **kwargs):
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="Wrong Person", mrn="W-1"),
                       uploaded_by=uploader, **kwargs)
    DonePredictionFactory(scan=scan)
    return scan


def test_an_mrn_beside_the_reason_withdraws_the_scan_and_opens_the_new_one(ui_client, clinician, organization,
                                                                           active_model_version):
    scan = _scan(organization, clinician)
    right = PatientFactory(organization=organization, name="Right Person", mrn="R-2")
    assert "Meant for the patient with MRN (optional)" in ui_client.get(
        reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()

    response = ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]),
                              {"reason": "uploaded for the wrong patient", "mrn": " R-2 "}, follow=True)

    copy = Scan.objects.get(patient=right)
    assert response.redirect_chain[-1][0] == reverse("diagnosis:scan_detail", args=[copy.pk])
    page = response.content.decode()
    assert f"The slice is filed for Right Person as this new scan, and its diagnosis is on the way. Scan #{scan.pk} " \
           "stays withdrawn with Wrong Person." in page
    assert "This slice was filed here from" in page and f"scan #{scan.pk} of <bdi>Wrong Person</bdi> (MRN W-1)" in page
    assert "withdrawn from that patient as entered in error: <bdi>uploaded for the wrong patient</bdi>" in page
    assert Scan.objects.get(pk=scan.pk).is_withdrawn
    # Opening the new scan is an opening of the right patient's record, not the wrong one's.
    assert PatientAccess.objects.filter(patient=right, scan=copy, what=PatientAccess.What.SCAN).exists()

    old_page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    assert f"Right Person</bdi> (MRN R-2) as scan #{copy.pk}</a>" in old_page
    assert "File this slice for the right patient" not in old_page  # filed once while that filing stands


def test_an_unknown_mrn_is_a_form_error_and_nothing_is_withdrawn(ui_client, clinician, organization, other_organization,
                                                                 active_model_version):
    scan = _scan(organization, clinician)
    PatientFactory(organization=other_organization, mrn="ELSEWHERE-9")

    response = ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]),
                              {"reason": "wrong patient", "mrn": "ELSEWHERE-9"})

    assert response.status_code == 400
    assert "No patient with MRN &#x27;ELSEWHERE-9&#x27; in your organization: register them first." in response.content.decode()
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and Scan.objects.count() == 1


def test_a_withdrawn_scan_is_filed_for_the_right_patient_afterwards(ui_client, clinician, organization,
                                                                   active_model_version):
    scan = _scan(organization, clinician)
    ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]), {"reason": "wrong patient"})
    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    assert "File this slice for the right patient" in page
    right = PatientFactory(organization=organization, name="Right Person", mrn="R-2")

    response = ui_client.post(reverse("diagnosis:scan_refile", args=[scan.pk]), {"mrn": "R-2"}, follow=True)

    copy = Scan.objects.get(patient=right)
    assert response.redirect_chain[-1][0] == reverse("diagnosis:scan_detail", args=[copy.pk])
    assert copy.refiled_from_id == scan.pk and copy.latest_prediction.status == "queued"


def test_refusals_of_the_service_show_on_the_form(ui_client, clinician, organization, active_model_version):
    scan = _scan(organization, clinician)

    response = ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]), {"reason": "wrong patient", "mrn": "W-1"})

    assert response.status_code == 400 and "already Wrong Person&#x27;s" in response.content.decode()
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn


def test_without_an_active_model_the_form_says_so_and_nothing_changes(ui_client, clinician, organization):
    scan = _scan(organization, clinician)
    PatientFactory(organization=organization, mrn="R-2")

    response = ui_client.post(reverse("diagnosis:scan_withdraw", args=[scan.pk]), {"reason": "wrong patient", "mrn": "R-2"})

    assert response.status_code == 400 and "No diagnosis model is active." in response.content.decode()
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and Scan.objects.count() == 1


def test_another_clinician_is_not_offered_the_filing_and_is_refused(ui_client, nurse, organization,
                                                                   active_model_version):
    from diagnosis import services

    scan = _scan(organization, nurse)
    services.scan_withdraw(scan=scan, user=nurse, reason="wrong patient")
    PatientFactory(organization=organization, mrn="R-2")

    assert "File this slice for the right patient" not in ui_client.get(
        reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    response = ui_client.post(reverse("diagnosis:scan_refile", args=[scan.pk]), {"mrn": "R-2"}, follow=True)

    assert "can file it for another patient" in response.content.decode() and Scan.objects.count() == 1


def test_the_later_filing_of_a_scan_restored_meanwhile_says_to_withdraw_it_first(ui_client, clinician, organization,
                                                                                 active_model_version):
    scan = _scan(organization, clinician)
    PatientFactory(organization=organization, mrn="R-2")

    response = ui_client.post(reverse("diagnosis:scan_refile", args=[scan.pk]), {"mrn": "R-2"}, follow=True)

    assert "This scan is not withdrawn: withdraw it with the reason" in response.content.decode()
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and Scan.objects.count() == 1
