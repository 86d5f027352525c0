"""Clinician UI: server-rendered pages. Every view needs a logged-in member of an organization, and
objects of other organizations answer 404 exactly like missing ones."""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import selectors, services
from .forms import PatientForm, ScanUploadForm
from .models import Prediction, Scan

PATIENTS_PER_PAGE = 25


def member_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if selectors.membership_of(request.user) is None:
            return render(request, "diagnosis/no_membership.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def _add_service_errors(form, exc: ValidationError) -> None:
    """Show a service's errors on the matching fields, and the rest above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, messages_ in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


def _patient_or_404(request: HttpRequest, pk: int):
    patient = selectors.patient_get(user=request.user, pk=pk)
    if patient is None:
        raise Http404("No such patient.")
    return patient


def _scan_or_404(request: HttpRequest, pk: int) -> Scan:
    scan = selectors.scan_get(user=request.user, pk=pk)
    if scan is None:
        raise Http404("No such scan.")
    return scan


@member_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("diagnosis:patient_list")


@member_required
@require_GET
def patient_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    page = Paginator(selectors.patient_list(user=request.user, search=query), PATIENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "diagnosis/patient_list.html", {"page": page, "query": query})


@member_required
@require_http_methods(["GET", "POST"])
def patient_create(request: HttpRequest) -> HttpResponse:
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_create(organization=selectors.organization_of(request.user), **form.cleaned_data)
        except ValidationError as exc:
            _add_service_errors(form, exc)
        else:
            messages.success(request, f"Patient {patient.name} registered.")
            return redirect("diagnosis:patient_detail", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "diagnosis/patient_form.html", {"form": form}, status=status)


def _render_patient(request: HttpRequest, patient, form: ScanUploadForm, status: int = 200) -> HttpResponse:
    scans = selectors.scan_list(user=request.user, patient=patient)
    return render(
        request,
        "diagnosis/patient_detail.html",
        {"patient": patient, "scans": scans, "form": form},
        status=status,
    )


@member_required
@require_GET
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_patient(request, _patient_or_404(request, pk), ScanUploadForm())


@member_required
@require_POST
def scan_upload(request: HttpRequest, pk: int) -> HttpResponse:
    patient = _patient_or_404(request, pk)
    form = ScanUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            scan = services.scan_create(patient=patient, file=form.cleaned_data["image"], uploaded_by=request.user)
        except ValidationError as exc:
            _add_service_errors(form, exc)
        except services.NoActiveModelVersion as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Scan uploaded; the diagnosis is on its way.")
            return redirect("diagnosis:scan_detail", pk=scan.pk)
    return _render_patient(request, patient, form, status=400)


@member_required
@require_GET
def scan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    scan = _scan_or_404(request, pk)
    prediction = scan.latest_prediction
    return render(
        request,
        "diagnosis/scan_detail.html",
        {
            "scan": scan,
            "prediction": prediction,
            "probabilities": _probabilities_for_display(prediction),
            "history": list(scan.predictions.all())[1:],
        },
    )


@member_required
@require_POST
def scan_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    scan = _scan_or_404(request, pk)
    try:
        services.prediction_create(scan=scan)
    except services.NoActiveModelVersion as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "A new diagnosis is queued.")
    return redirect("diagnosis:scan_detail", pk=scan.pk)


@member_required
@require_GET
def scan_image(request: HttpRequest, pk: int) -> HttpResponse:
    scan = _scan_or_404(request, pk)
    try:
        handle = scan.image.open("rb")
    except OSError:
        raise Http404("The stored image is missing.") from None
    response = FileResponse(handle, content_type=f"image/{scan.format.lower()}")
    # Patient data: browsers and proxies must not keep copies.
    response["Cache-Control"] = "private, no-store"
    return response


def _probabilities_for_display(prediction: Prediction | None) -> list[dict[str, Any]]:
    if prediction is None or not prediction.probabilities:
        return []
    rows = [
        {"name": name, "probability": float(p), "percent": round(float(p) * 100, 1)}
        for name, p in prediction.probabilities.items()
    ]
    return sorted(rows, key=lambda row: (-row["probability"], row["name"]))


def prediction_state(prediction: Prediction | None) -> dict[str, Any]:
    if prediction is None:
        return {"status": None, "final": True}
    return {
        "id": prediction.pk,
        "status": prediction.status,
        "status_display": prediction.get_status_display(),
        "final": prediction.is_final,
        "label": prediction.label,
        "probabilities": _probabilities_for_display(prediction),
        "out_of_scope": prediction.out_of_scope,
        "out_of_scope_reason": prediction.out_of_scope_reason,
        "model_version": prediction.model_version.name,
        "failure_reason": prediction.failure_reason,
        "queued_at": prediction.queued_at.isoformat() if prediction.queued_at else None,
        "started_at": prediction.started_at.isoformat() if prediction.started_at else None,
        "finished_at": prediction.finished_at.isoformat() if prediction.finished_at else None,
        "inference_ms": prediction.inference_ms,
    }


@member_required
@require_GET
@never_cache
def scan_status(request: HttpRequest, pk: int) -> JsonResponse:
    scan = _scan_or_404(request, pk)
    state = prediction_state(selectors.prediction_latest(user=request.user, scan=scan))
    state["scan"] = scan.pk
    state["url"] = reverse("diagnosis:scan_detail", kwargs={"pk": scan.pk})
    return JsonResponse(state)
