import datetime

from django.contrib.auth.models import AnonymousUser

from diagnosis import selectors

from .factories import PatientFactory, PredictionFactory, ScanFactory, UserFactory


def test_patient_list_contains_only_the_users_organization(clinician, organization, other_organization):
    mine = PatientFactory(organization=organization)
    PatientFactory(organization=other_organization)

    assert list(selectors.patient_list(user=clinician)) == [mine]


def test_patient_list_searches_name_and_mrn_case_insensitively(clinician, organization, other_organization):
    ada = PatientFactory(organization=organization, name="Ada Lovelace", mrn="X-1")
    grace = PatientFactory(organization=organization, name="Grace Hopper", mrn="LOVE-7")
    PatientFactory(organization=other_organization, name="Ada Other", mrn="LOVE-9")

    assert list(selectors.patient_list(user=clinician, search="ada")) == [ada]
    assert set(selectors.patient_list(user=clinician, search="love")) == {ada, grace}
    assert list(selectors.patient_list(user=clinician, search="  x-1 ")) == [ada]


def test_a_search_with_a_nul_character_finds_no_one(clinician, organization):
    PatientFactory(organization=organization, name="Ada Lovelace", mrn="X-1")

    assert list(selectors.patient_list(user=clinician, search="Ada\x00")) == []


def test_users_without_an_organization_see_nothing(organization):
    PatientFactory(organization=organization)
    loner = UserFactory()

    assert not selectors.patient_list(user=loner).exists()
    assert not selectors.patient_list(user=AnonymousUser()).exists()
    assert not selectors.scan_list(user=loner).exists()


def test_patient_get_returns_none_for_another_organizations_patient(clinician, other_organization):
    theirs = PatientFactory(organization=other_organization)

    assert selectors.patient_get(user=clinician, pk=theirs.pk) is None


def test_scan_list_is_tenant_filtered_newest_first_and_filters_by_patient(clinician, organization, other_organization):
    patient = PatientFactory(organization=organization)
    other_patient = PatientFactory(organization=organization)
    old = ScanFactory(patient=patient, uploaded_at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    new = ScanFactory(patient=patient, uploaded_at=datetime.datetime(2024, 6, 1, tzinfo=datetime.UTC))
    elsewhere = ScanFactory(patient=other_patient)
    ScanFactory(patient=PatientFactory(organization=other_organization))

    assert list(selectors.scan_list(user=clinician, patient=patient)) == [new, old]
    assert set(selectors.scan_list(user=clinician)) == {new, old, elsewhere}


def test_scan_get_hides_another_organizations_scan(clinician, other_organization):
    theirs = ScanFactory(patient=PatientFactory(organization=other_organization))

    assert selectors.scan_get(user=clinician, pk=theirs.pk) is None


def test_the_latest_prediction_is_the_newest_one(clinician, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    PredictionFactory(scan=scan, queued_at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    newest = PredictionFactory(scan=scan, queued_at=datetime.datetime(2024, 2, 1, tzinfo=datetime.UTC))

    assert selectors.prediction_latest(user=clinician, scan=scan) == newest
    assert selectors.scan_get(user=clinician, pk=scan.pk).latest_prediction == newest


def test_prediction_latest_hides_another_organizations_prediction(clinician, other_organization):
    scan = ScanFactory(patient=PatientFactory(organization=other_organization))
    PredictionFactory(scan=scan)

    assert selectors.prediction_latest(user=clinician, scan=scan) is None
