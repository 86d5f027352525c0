"""On the patient's page a clinician records that the patient refuses AI training, and allows it again; the page
says which holds, and the change is listed with the corrections."""

from django.urls import reverse

from diagnosis.models import Patient

from .factories import PatientFactory


def test_a_clinician_records_the_refusal_and_the_page_says_so(client, clinician, organization):
    patient = PatientFactory(organization=organization)
    client.force_login(clinician)
    page = reverse("diagnosis:patient_detail", args=[patient.pk])
    assert "The patient refuses AI training" in client.get(page).content.decode()

    done = client.post(reverse("diagnosis:patient_training_use", args=[patient.pk]), {"allowed": "no"}, follow=True)

    html = done.content.decode()
    assert done.redirect_chain[-1][0] == page
    assert "kept out of AI training from now on" in html and "Refused by the patient" in html
    assert "Slices used for AI training" in html  # with the corrections
    assert Patient.objects.get(pk=patient.pk).training_opt_out

    client.post(reverse("diagnosis:patient_training_use", args=[patient.pk]), {"allowed": "yes"})
    assert not Patient.objects.get(pk=patient.pk).training_opt_out


def test_a_form_without_an_answer_changes_nothing(client, clinician, organization):
    patient = PatientFactory(organization=organization)
    client.force_login(clinician)

    done = client.post(reverse("diagnosis:patient_training_use", args=[patient.pk]), {"allowed": "maybe"}, follow=True)

    assert "nothing changed" in done.content.decode() and not Patient.objects.get(pk=patient.pk).training_opt_out
