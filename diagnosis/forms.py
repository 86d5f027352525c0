from django import forms

from .models import Patient


class PatientForm(forms.Form):
    mrn = forms.CharField(label="MRN", max_length=64, help_text="Medical record number, unique in your organization.")
    name = forms.CharField(max_length=200)
    birth_date = forms.DateField(label="Birth date", widget=forms.DateInput(attrs={"type": "date"}))
    sex = forms.ChoiceField(choices=Patient.Sex.choices, initial=Patient.Sex.UNKNOWN)


class ScanUploadForm(forms.Form):
    # A plain FileField: the service inspects the bytes and explains each refusal.
    image = forms.FileField(
        label="CT slice (PNG or JPEG)",
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg"}),
    )
