"""A patient's whole record as one ZIP: asked for on the patient's page, built by the worker, downloaded from a
page that says when it is ready."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from .. import selectors, services
from ..models import Patient, PatientAccess, RecordExport
from ..record_export import zip_download
from .common import organization_admin_required, patient_or_404, post_only


def _export_or_404(request: HttpRequest, patient: Patient, export_pk: int) -> RecordExport:
    export = selectors.record_export_get(user=request.user, pk=export_pk)
    if export is None or export.patient_id != patient.pk:
        raise Http404("No such export of this record.")
    return export


@organization_admin_required
@post_only("diagnosis:patient_detail")
def patient_export(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask the worker for the record as a ZIP, then wait for it on its own page."""
    patient = patient_or_404(request, pk)
    try:
        export = services.record_export_request(patient=patient, user=request.user,
                                                base_url=request.build_absolute_uri("/"))
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect("diagnosis:patient_detail", pk=patient.pk)
    return redirect("diagnosis:record_export", pk=patient.pk, export_pk=export.pk)


def _status_html(request: HttpRequest, export: RecordExport) -> str:
    return render_to_string("diagnosis/_record_export_status.html", {"export": export}, request=request).strip()


@organization_admin_required
@require_GET
def record_export(request: HttpRequest, pk: int, export_pk: int) -> HttpResponse:
    patient = patient_or_404(request, pk)
    export = _export_or_404(request, patient, export_pk)
    return render(request, "diagnosis/record_export.html", {"patient": patient, "export": export})


@organization_admin_required
@require_GET
def record_export_status(request: HttpRequest, pk: int, export_pk: int) -> JsonResponse:
    """What the export page shows of it, for the page to update itself while it is built."""
    patient = patient_or_404(request, pk)
    export = _export_or_404(request, patient, export_pk)
    return JsonResponse({"status": export.status, "html": _status_html(request, export)})


@organization_admin_required
@require_GET
def record_export_download(request: HttpRequest, pk: int, export_pk: int) -> HttpResponse:
    patient = patient_or_404(request, pk)
    export = _export_or_404(request, patient, export_pk)
    try:
        handle = services.record_export_open(export=export, user=request.user, channel=PatientAccess.Channel.WEB)
    except services.RecordExportUnavailable as exc:
        return render(request, "diagnosis/record_export.html", {
            "patient": patient, "export": export, "unavailable": exc.message}, status=410 if exc.gone else 409)
    return zip_download(handle, filename=services.record_export_filename(export))
