"""Patients: list and search, registration and correction, the patient page with its scans and the upload form."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from .. import selectors, services
from ..forms import (PatientEditForm, PatientEraseForm, PatientForm, PatientMergeForm, PatientMergeUndoForm,
                     ScanUploadForm, TrainingUseForm)
from ..models import Patient, PatientAccess
from .common import (
    add_service_errors, member_required, organization_admin_required, patient_by_mrn, patient_or_404, post_only,
)

logger = logging.getLogger(__name__)

PATIENTS_PER_PAGE = 25
RECENT_EXPORTS = 5


@member_required
@require_GET
def patient_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    page = Paginator(selectors.patient_list(user=request.user, search=query), PATIENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    # A record merged into another is out of the list; someone who searches its MRN is told where it went.
    merged = selectors.patient_list(user=request.user, mrn=query).filter(merged_into__isnull=False).first() \
        if query else None
    return render(request, "diagnosis/patient_list.html",
                  {"page": page, "query": query, "page_query": urlencode({"q": query}) if query else "",
                   "merged": merged})


@member_required
@require_http_methods(["GET", "POST"])
def patient_create(request: HttpRequest) -> HttpResponse:
    form = PatientForm(request.POST or None)
    organization = selectors.organization_of(request.user)
    if request.method == "POST" and form.is_valid():
        # A person registered twice splits their scans over two records: name the likely earlier record first,
        # and register only when asked to anyway.
        duplicates = selectors.patient_possible_duplicates(
            organization_id=organization.pk, name=form.cleaned_data["name"], birth_date=form.cleaned_data["birth_date"])
        if duplicates and not request.POST.get("register_anyway"):
            return render(request, "diagnosis/patient_form.html", {"form": form, "possible_duplicates": duplicates})
        try:
            patient = services.patient_create(organization=organization, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Patient {patient.name} registered.")
            return redirect("diagnosis:patient_detail", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "diagnosis/patient_form.html", {"form": form}, status=status)


@member_required
@require_http_methods(["GET", "POST"])
def patient_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Correct a patient's details; an invalid or duplicate value shows on the form and changes nothing."""
    patient = patient_or_404(request, pk)
    if patient.merged_into_id is not None:
        messages.error(request, f"{services.merged_message(patient)} Correct the details there.")
        return redirect("diagnosis:patient_detail", pk=patient.pk)
    initial = {"mrn": patient.mrn, "name": patient.name, "birth_date": patient.birth_date, "sex": patient.sex,
               "expected_version": selectors.patient_version(patient=patient)}
    form = PatientEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        values = {**form.cleaned_data, "expected_version": form.cleaned_data["expected_version"] or None}
        try:
            patient = services.patient_update(patient=patient, changed_by=request.user, **values)
        except ValidationError as exc:
            add_service_errors(form, exc)
        except services.PatientChangedMeanwhile as exc:
            form.add_error(None, str(exc))
            # Saving again now replaces the details just shown, knowingly.
            form.data = form.data.copy()
            form.data["expected_version"] = selectors.patient_version(patient=exc.current)
            patient = exc.current
        else:
            messages.success(request, f"Details of {patient.name} saved.")
            return redirect("diagnosis:patient_detail", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "diagnosis/patient_form.html", {"form": form, "patient": patient}, status=status)


PAGE_ACCESSES = 50  # the latest; the API and the Django admin list them all


def _render_patient(
    request: HttpRequest, patient: Patient, form: ScanUploadForm, status: int = 200, refused: list | None = None,
    merge_form: PatientMergeForm | None = None, undo_form: PatientMergeUndoForm | None = None,
) -> HttpResponse:
    scans = list(selectors.scan_list(user=request.user, patient=patient))
    # Who opened the record is for the organization's administrators (privacy review), not every reader.
    accesses = None
    admin = selectors.is_organization_admin(request.user)
    if admin:
        accesses = list(selectors.patient_accesses(patient=patient)[:PAGE_ACCESSES])
    merged = patient.merged_into_id is not None
    return render(
        request,
        "diagnosis/patient_detail.html",
        {
            "patient": patient,
            "changes": selectors.patient_changes(patient=patient),
            "accesses": accesses,
            "studies": selectors.patient_studies(scans=scans),
            "unreviewed": [scan for scan in scans if scan.current_review is None and not scan.is_withdrawn],
            "reviewed": [scan for scan in scans if scan.current_review is not None and not scan.is_withdrawn],
            "withdrawn": [scan for scan in scans if scan.is_withdrawn],
            "form": form,
            "refused": refused or [],
            "merges": selectors.patient_merges(patient=patient),
            "merge_standing": selectors.patient_merge_standing(duplicate=patient) if merged else None,
            "merge_form": (merge_form or PatientMergeForm()) if admin and not merged else None,
            "possible_duplicates": selectors.patient_possible_duplicates(
                organization_id=patient.organization_id, name=patient.name, birth_date=patient.birth_date,
                exclude=patient) if admin and not merged else [],
            "undo_form": (undo_form or PatientMergeUndoForm()) if admin and merged else None,
            "found_distinct": selectors.patient_found_distinct(patient=patient) if admin else [],
            "may_erase": admin and not merged,
            "may_export": admin,
            "record_exports": list(selectors.record_exports_of(patient=patient)[:RECENT_EXPORTS]) if admin else [],
        },
        status=status,
    )


@member_required
@require_GET
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = selectors.patient_get(user=request.user, pk=pk)
    if patient is None:
        erasure = selectors.patient_erasure_of(user=request.user, pk=pk)
        if erasure is None:
            raise Http404("No such patient.")
        # A bookmark or an old link: the record is gone for good, and the page says so rather than "not found".
        return render(request, "diagnosis/patient_erased.html", {"erasure": erasure}, status=410)
    services.patient_access_record(user=request.user, patient=patient, what=PatientAccess.What.PATIENT,
                                   channel=PatientAccess.Channel.WEB)
    return _render_patient(request, patient, ScanUploadForm())


@member_required
@post_only("diagnosis:patient_detail")
def scan_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """Without JavaScript: one or more files in one form post; each good file becomes a scan, each
    refused one is listed with its reason, and a refusal never stops the others."""
    patient = patient_or_404(request, pk)
    form = ScanUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_patient(request, patient, form, status=400)
    created, refused = [], []
    for upload in form.cleaned_data["image"]:
        try:
            created.append(services.scan_create(patient=patient, file=upload, uploaded_by=request.user))
        except ValidationError as exc:
            refused.append({"name": upload.name, "messages": exc.messages})
        except services.NoActiveModelVersion as exc:
            refused.append({"name": upload.name, "messages": [str(exc)]})
        except Exception:
            # An unforeseen failure on one file must not lose the files after it (each file is its own
            # transaction); it is logged in full for whoever runs the service.
            logger.exception("Upload of %r for patient %s failed", upload.name, patient.pk)
            refused.append({"name": upload.name, "messages": [
                "This file could not be processed because of an error on the server (it is logged); "
                "the other files were not affected."]})
    if not refused and len(created) == 1:
        messages.success(request, "Scan uploaded; the diagnosis is on its way.")
        return redirect("diagnosis:scan_detail", pk=created[0].pk)
    if not refused:
        messages.success(request, f"{len(created)} scans uploaded; their diagnoses are on their way.")
        return redirect("diagnosis:patient_detail", pk=patient.pk)
    if created:
        messages.success(request, f"{len(created)} of {len(created) + len(refused)} files uploaded.")
    return _render_patient(request, patient, ScanUploadForm(), status=400, refused=refused)


@organization_admin_required
@post_only("diagnosis:patient_detail")
def patient_merge(request: HttpRequest, pk: int) -> HttpResponse:
    """Merge this record into another record of the same person, after a page that shows both side by side."""
    patient = patient_or_404(request, pk)
    form = PatientMergeForm(request.POST)
    if form.is_valid():
        into = patient_by_mrn(request, form)
        if into is not None:
            try:
                if not form.cleaned_data["confirmed"]:
                    services.check_mergeable(duplicate=patient, into=into)
                    return render(request, "diagnosis/patient_merge.html", {
                        "patient": patient, "into": into, "form": form,
                        "moving": selectors.scan_list(user=request.user, patient=patient).count(),
                        "staying": selectors.scan_list(user=request.user, patient=into).count(),
                    })
                services.patient_merge(duplicate=patient, into=into, user=request.user,
                                       reason=form.cleaned_data["reason"])
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"The record with MRN {patient.mrn} is merged into this one: its scans are "
                                          "here now. Undo the merge from that record's page if it was a mistake.")
                return redirect("diagnosis:patient_detail", pk=into.pk)
    return _render_patient(request, patient, ScanUploadForm(), status=400, merge_form=form)


@organization_admin_required
@post_only("diagnosis:patient_detail")
def patient_unmerge(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_or_404(request, pk)
    form = PatientMergeUndoForm(request.POST)
    if form.is_valid():
        try:
            services.patient_merge_undo(duplicate=patient, user=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "The merge is undone: the scans it moved are back with this record, and it is "
                                      "listed again.")
            return redirect("diagnosis:patient_detail", pk=patient.pk)
    return _render_patient(request, patient, ScanUploadForm(), status=400, undo_form=form)


@member_required
@post_only("diagnosis:patient_detail")
def patient_training_use(request: HttpRequest, pk: int) -> HttpResponse:
    """Record the patient's wish about their slices training the model."""
    patient = patient_or_404(request, pk)
    form = TrainingUseForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say whether the patient allows it (yes or no); nothing changed.")
        return redirect("diagnosis:patient_detail", pk=patient.pk)
    try:
        patient = services.patient_training_use_set(patient=patient, user=request.user,
                                                    allowed=form.cleaned_data["allowed"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Recorded: this patient's slices are " + (
            "kept out of AI training from now on." if patient.training_opt_out else "used for AI training again."))
    return redirect("diagnosis:patient_detail", pk=patient.pk)


@organization_admin_required
@require_http_methods(["GET", "POST"])
def patient_erase(request: HttpRequest, pk: int) -> HttpResponse:
    """Erase the record for good, after a page that says what goes with it and asks for its MRN."""
    patient = patient_or_404(request, pk)
    form = PatientEraseForm(request.POST or None)
    try:
        services.check_erasable(patient=patient, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("diagnosis:patient_detail", pk=patient.pk)
    if request.method == "POST" and form.is_valid():
        try:
            erasure = services.patient_erase(patient=patient, user=request.user, reason=form.cleaned_data["reason"],
                                             confirm_mrn=form.cleaned_data["mrn"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, (
                f"The record is erased with {erasure.scans} scan{'' if erasure.scans == 1 else 's'}: nothing of the "
                "patient is kept. The erasure is listed on the Members page."))
            return redirect("diagnosis:patient_list")
    return render(request, "diagnosis/patient_erase.html", {
        "patient": patient, "form": form, "preview": selectors.patient_erasure_preview(patient=patient),
    }, status=400 if request.method == "POST" else 200)


DUPLICATE_PAIRS_SHOWN = 200


@organization_admin_required
@require_GET
def patient_duplicates(request: HttpRequest) -> HttpResponse:
    """Records in use that may be one person registered twice, for an administrator to merge or leave."""
    organization = selectors.organization_of(request.user)
    pairs = selectors.patient_duplicate_pairs(organization_id=organization.pk, limit=DUPLICATE_PAIRS_SHOWN)
    return render(request, "diagnosis/patient_duplicates.html", {"pairs": pairs, "limit": DUPLICATE_PAIRS_SHOWN})


@organization_admin_required
@post_only("diagnosis:patient_detail")
def patient_mark_distinct(request: HttpRequest, pk: int, other: int) -> HttpResponse:
    """Two records alike in birth date and name are two people: stop suggesting them for merging (``undo``: take
    that finding back)."""
    patient, other_patient = patient_or_404(request, pk), patient_or_404(request, other)
    pair = f"{patient.name} (MRN {patient.mrn}) and {other_patient.name} (MRN {other_patient.mrn})"
    try:
        if request.POST.get("undo"):
            services.patient_pair_unmark_distinct(patient=patient, other=other_patient, user=request.user)
            messages.success(request, f"{pair} are no longer recorded as two people.")
        else:
            services.patient_pair_mark_distinct(patient=patient, other=other_patient, user=request.user)
            messages.success(request, f"{pair} are recorded as two people and no longer suggested as duplicates.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    if request.POST.get("back") == "duplicates":
        return redirect("diagnosis:patient_duplicates")
    return redirect("diagnosis:patient_detail", pk=patient.pk)
