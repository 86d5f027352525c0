from django import forms

from .models import WEBHOOK_EVENTS, Membership, Patient
from .services.patients import birth_date_error
from .validators import date_range_error


class PatientForm(forms.Form):
    mrn = forms.CharField(label="MRN", max_length=64, help_text="Medical record number, unique in your organization.")
    # dir="auto": a name typed in Arabic or Hebrew runs right to left as it is typed.
    name = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"dir": "auto"}))
    birth_date = forms.DateField(label="Birth date", widget=forms.DateInput(attrs={"type": "date"}))
    sex = forms.ChoiceField(choices=Patient.Sex.choices, initial=Patient.Sex.UNKNOWN)

    def clean_birth_date(self):
        # Checked here too, so that a form with several mistakes names them all at once.
        value = self.cleaned_data["birth_date"]
        error = birth_date_error(value, stored=self.initial.get("birth_date"))
        if error:
            raise forms.ValidationError(error)
        return value


class PatientEditForm(PatientForm):
    # The details as the editor loaded them (selectors.patient_version): a colleague's correction saved
    # meanwhile refuses this one instead of being overwritten unseen.
    expected_version = forms.CharField(required=False, widget=forms.HiddenInput)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """One or more files; each is checked by the upload service, which explains every refusal."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/png,image/jpeg,application/dicom,.dcm", "multiple": True}))
        # An empty file is refused by the upload service, named, like any other bad file; here it
        # would refuse the whole batch without saying which file it was.
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            if not data:
                return [single(None, initial)]  # raises "required"
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class ScanUploadForm(forms.Form):
    # Plain file fields: the service inspects the bytes and explains each refusal.
    image = MultipleFileField(
        label="CT slices (PNG, JPEG or DICOM)",
        help_text="Choose one or more slices of this patient; each becomes its own scan and diagnosis.",
    )


class MultilineField(forms.CharField):
    """Text whose line breaks count as one character each, as the browser counted them against maxlength
    (it sends them as CRLF)."""

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n") if isinstance(value, str) else value


def _mrn_field(*, required: bool, label: str, help_text: str) -> forms.CharField:
    return forms.CharField(label=label, required=required, max_length=64, help_text=help_text,
                           widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        label="Why", max_length=200, widget=forms.TextInput(attrs={"dir": "auto"}),
        help_text="Recorded with the scan, e.g. \"uploaded for the wrong patient\".",
    )
    mrn = _mrn_field(required=False, label="Meant for the patient with MRN (optional)",
                     help_text="The slice is then filed for that patient as a new scan and diagnosed again.")


class RefileForm(forms.Form):
    mrn = _mrn_field(required=True, label="MRN of the right patient",
                     help_text="The slice is filed for that patient as a new scan and diagnosed again.")


class RestoreForm(forms.Form):
    reason = forms.CharField(
        label="Why", max_length=200, widget=forms.TextInput(attrs={"dir": "auto"}),
        help_text="Recorded with the scan, e.g. \"withdrawn by mistake instead of the scan before it\".",
    )


class PatientMergeForm(forms.Form):
    mrn = _mrn_field(required=True, label="MRN of the record that stays",
                     help_text="The other record of this person: this record's scans move there.")
    reason = forms.CharField(
        label="Why", max_length=200, widget=forms.TextInput(attrs={"dir": "auto"}),
        help_text="Recorded with the merge, e.g. \"registered twice, in the emergency department\".",
    )
    # Set by the confirmation page, which shows both records side by side before anything moves.
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)


class PatientMergeUndoForm(forms.Form):
    reason = forms.CharField(
        label="Why", max_length=200, widget=forms.TextInput(attrs={"dir": "auto"}),
        help_text="Recorded with the merge, e.g. \"two people with the same name and birth date\".",
    )


class TrainingUseForm(forms.Form):
    allowed = forms.TypedChoiceField(choices=[("yes", "yes"), ("no", "no")], coerce=lambda value: value == "yes")


class PatientEraseForm(forms.Form):
    reason = forms.CharField(
        label="Why", max_length=200, widget=forms.TextInput(attrs={"dir": "auto"}),
        help_text="Kept after the erasure, so do not name the patient: e.g. \"consent withdrawn on 2026-12-01\".",
    )
    mrn = forms.CharField(label="Type the record's MRN to confirm", max_length=64,
                          widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))


class ReviewForm(forms.Form):
    label = forms.ChoiceField(label="True class", widget=forms.RadioSelect)
    comment = MultilineField(
        label="Comment (optional)", required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"})
    )
    # The AI result on screen: the service refuses the review if a newer one arrived meanwhile.
    prediction_id = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, class_names: list[str], ai_label: str = "", current: str = "",
                 prediction_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["prediction_id"].initial = prediction_id
        self.fields["label"].choices = [
            (name, f"{name} (AI)" if name == ai_label else name) for name in class_names
        ]
        # Start from the current review's label, else from the AI's.
        if not self.is_bound and (current or ai_label):
            self.fields["label"].initial = current or ai_label


class WorklistFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, label="Status")
    label = forms.ChoiceField(required=False, label="AI label")
    uploaded_from = forms.DateField(required=False, label="Uploaded from", widget=forms.DateInput(attrs={"type": "date"}))
    uploaded_to = forms.DateField(required=False, label="Uploaded to", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, statuses: dict[str, str], labels: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Any status"), *statuses.items()]
        self.fields["label"].choices = [("", "Any label"), *[(name, name) for name in labels]]

    def clean(self):
        cleaned = super().clean()
        error = date_range_error(start=cleaned.get("uploaded_from"), end=cleaned.get("uploaded_to"))
        if error:
            self.add_error("uploaded_to", error)
        return cleaned


class MemberCreateForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="What they type to log in: letters, digits and @ . + - _ only.")
    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.CLINICIAN,
                             help_text="Administrators also manage members, see agreement figures and run training.")


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class MemberDeactivateForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False, help_text="Recorded with the change, e.g. \"left the department\".")


class TwoFactorCodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app", max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
        help_text="6 digits; a new one every 30 seconds.",
    )


class RecoveryCodeForm(forms.Form):
    code = forms.CharField(
        label="Recovery code", max_length=40,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false",
                                      "autofocus": True}),
        help_text="One of the codes you saved when you set up your authenticator app, such as k7qm-x2pd-9fre. Each works once.",
    )


class TwoFactorPolicyForm(forms.Form):
    require_two_factor = forms.BooleanField(
        label="Require two-factor authentication of every member", required=False,
        help_text="Members without an authenticator app set one up at their next request. API tokens are not affected.",
    )


class ApiTokenPolicyForm(forms.Form):
    prefix = "tokens"
    api_token_days = forms.IntegerField(
        label="API tokens expire after (days)", required=False, min_value=1, max_value=3650,
        help_text="Counted from when each token was issued, for those issued already too. Empty: tokens work until "
                  "replaced or revoked.",
    )


class WebhookForm(forms.Form):
    url = forms.CharField(
        label="Notification URL", max_length=500, required=False,
        help_text="Where kidneyweb POSTs finished diagnoses, reviews and withdrawn scans (https). Empty: none are sent.",
        widget=forms.URLInput(attrs={"placeholder": "https://ris.example.org/kidneyweb", "autocomplete": "off"}),
    )


class PacsForm(forms.Form):
    prefix = "pacs"  # on the page beside the notification URL and the new member's user name
    url = forms.CharField(
        label="Archive's address", max_length=500, required=False,
        help_text="Its DICOMweb base (kidneyweb stores to its /studies, STOW-RS), or dicoms://AE_TITLE@host:port "
                  "for an archive that takes only DICOM's own protocol over TLS (C-STORE; dicom:// without TLS; no "
                  "user name or password). Empty: no results are sent.",
        widget=forms.URLInput(attrs={"placeholder": "https://pacs.example.org/dicom-web", "autocomplete": "off"}),
    )
    username = forms.CharField(
        label="User name", max_length=150, required=False,
        help_text="The archive's user kidneyweb stores as (HTTP Basic). Empty: none.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    password = forms.CharField(
        label="Password", max_length=200, required=False, strip=False,
        help_text="Empty keeps the password set for this user.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    send_reports = forms.BooleanField(
        label="Also send each result as a structured report (DICOM SR)", required=False,
        help_text="The AI's finding coded (SNOMED CT) with its probability, the model and the slice, as IHE AI "
                  "Results gives it, for viewers and reporting systems that read findings; a review makes it "
                  "verified. Leave off if the archive's viewers cannot show SR.",
    )


class Hl7Form(forms.Form):
    prefix = "hl7"
    address = forms.CharField(
        label="Record system's HL7 address", max_length=300, required=False,
        help_text="Its HL7 v2 listener, as mllps://host:port (MLLP over TLS; mllp:// unencrypted, only where the "
                  "deployment allows it). Each finished result, review, withdrawal and restoral is sent as an "
                  "ORU^R01 message. Empty: none are sent.",
        widget=forms.TextInput(attrs={"placeholder": "mllps://engine.example.org:6661", "autocomplete": "off",
                                      "spellcheck": "false"}),
    )
    receiving_application = forms.CharField(
        label="Receiving application (MSH-5)", max_length=20, required=False,
        help_text="As the interface engine routes by it; empty if it does not.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}))
    receiving_facility = forms.CharField(
        label="Receiving facility (MSH-6)", max_length=20, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off"}))


class PacsOAuthForm(forms.Form):
    prefix = "pacs-oauth"
    token_url = forms.CharField(
        label="Token address", max_length=500, required=False,
        help_text="The authorization server's token endpoint (OAuth 2.0, client credentials). kidneyweb then sends a "
                  "bearer token instead of the user name and password. Empty: no OAuth 2.0.",
        widget=forms.URLInput(attrs={"placeholder": "https://sso.example.org/realms/pacs/protocol/openid-connect/token",
                                     "autocomplete": "off"}))
    client_id = forms.CharField(label="Client id", max_length=200, required=False,
                                widget=forms.TextInput(attrs={"autocomplete": "off"}))
    client_secret = forms.CharField(label="Client secret", max_length=500, required=False, strip=False,
                                    help_text="Empty keeps the secret set for this client id.",
                                    widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    scope = forms.CharField(label="Scope", max_length=500, required=False,
                            help_text="If the authorization server asks for one, e.g. an Azure DICOM service's "
                                      "https://dicom.healthcareapis.azure.com/.default.")


class PacsClientCertificateForm(forms.Form):
    prefix = "pacs-tls"
    MAX_BYTES = 64 * 1024  # a certificate chain of a few CAs and a key; anything larger is not one

    certificate = forms.FileField(
        label="Client certificate", help_text="kidneyweb's certificate in PEM form (.pem, .crt), issued by a CA the "
        "archive trusts, followed by any intermediate CAs' certificates.")
    key = forms.FileField(label="Its private key",
                          help_text="PEM, without a passphrase (.key, .pem). Kept sealed; never shown again.")

    def _text(self, name: str) -> str:
        upload = self.cleaned_data[name]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError(f"This file is larger than {self.MAX_BYTES // 1024} KB: it is not a PEM file.")
        try:
            return upload.read().decode("ascii")
        except UnicodeDecodeError:
            raise forms.ValidationError("This is not a PEM file (text): convert a DER or PKCS#12 file to PEM first.")

    def clean_certificate(self) -> str:
        return self._text("certificate")

    def clean_key(self) -> str:
        return self._text("key")


class PacsSinceForm(forms.Form):
    prefix = "pacs-since"
    since = forms.DateField(label="Send the results since", widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="Results that finished on or after this day and were never sent to the archive.")


class Hl7SinceForm(forms.Form):
    prefix = "hl7-since"
    since = forms.DateField(label="Send the results since", widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="Results of scans diagnosed on or after this day of which the record system "
                                      "was sent nothing, as each stands now.")


class WebhookEventsForm(forms.Form):
    events = forms.MultipleChoiceField(
        label="Send", required=False, widget=forms.CheckboxSelectMultiple,
        choices=list(WEBHOOK_EVENTS.items()), help_text="None ticked: nothing is sent but tests.",
    )


class AccessLogExportForm(forms.Form):
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        error = date_range_error(start=cleaned.get("since"), end=cleaned.get("until"))
        if error:
            self.add_error("until", error)
        return cleaned
