"""The scan page and what it fetches: status, image, heat maps, review, PDF report."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import reports, selectors, services
from ..forms import RefileForm, RestoreForm, ReviewForm, WithdrawForm
from ..models import PacsDelivery, PatientAccess, Prediction, Scan
from .common import add_service_errors, member_required, patient_by_mrn, post_only, scan_or_404
from .worklist import worklist_filters


def probabilities_for_display(prediction: Prediction | None) -> list[dict[str, Any]]:
    if prediction is None or not prediction.probabilities:
        return []
    rows = [
        {"name": name, "probability": float(p), "percent": round(float(p) * 100, 1)}
        for name, p in prediction.probabilities.items()
    ]
    return sorted(rows, key=lambda row: (-row["probability"], row["name"]))


def _heatmap_url(scan: Scan, prediction: Prediction | None) -> str:
    if prediction is None or prediction.status != Prediction.Status.DONE or not prediction.heatmap:
        return ""
    return reverse("diagnosis:scan_heatmap", kwargs={"pk": scan.pk})


def prediction_state(prediction: Prediction | None, scan: Scan | None = None) -> dict[str, Any]:
    if prediction is None:
        return {"status": None, "final": True}
    verdict = selectors.prediction_uncertainty(prediction)
    return {
        "id": prediction.pk,
        "status": prediction.status,
        "status_display": prediction.get_status_display(),
        "final": prediction.is_final,
        "label": prediction.label,
        "probabilities": probabilities_for_display(prediction),
        "confidence": prediction.confidence,
        "needs_review": verdict.needs_review,
        "needs_review_reason": verdict.reason,
        "confidence_threshold": verdict.threshold,
        "out_of_scope": prediction.out_of_scope,
        "out_of_scope_reason": prediction.out_of_scope_reason,
        "model_version": prediction.model_version.name,
        "class_names": list(prediction.model_version.class_names),
        "failure_reason": prediction.failure_reason,
        "queued_at": prediction.queued_at.isoformat() if prediction.queued_at else None,
        "started_at": prediction.started_at.isoformat() if prediction.started_at else None,
        "finished_at": prediction.finished_at.isoformat() if prediction.finished_at else None,
        "inference_ms": prediction.inference_ms,
        "heatmap_url": _heatmap_url(scan or prediction.scan, prediction),
    }


def _render_scan(request: HttpRequest, scan: Scan, review_form: ReviewForm | None = None, status: int = 200,
                 withdraw_form: WithdrawForm | None = None, restore_form: RestoreForm | None = None,
                 refile_form: RefileForm | None = None,
                 worklist: tuple[dict[str, Any], str] = ({}, "")) -> HttpResponse:
    filters, worklist_query = worklist
    prediction = scan.latest_prediction
    class_names = list(prediction.model_version.class_names) if prediction else []
    review = scan.current_review
    refilings = selectors.scan_refilings(scan=scan)
    refiled_as = next((copy for copy in refilings if not copy.is_withdrawn), None)
    if review_form is not None and review_form.is_bound and prediction is not None:
        # Shown again after a refusal: the next submission judges the result this page now shows.
        review_form.data = review_form.data.copy()
        review_form.data["prediction_id"] = str(prediction.pk)
    if review_form is None and prediction is not None:
        review_form = ReviewForm(class_names=class_names, ai_label=prediction.label, current=review.label if review else "",
                                 prediction_id=prediction.pk)
    return render(
        request,
        "diagnosis/scan_detail.html",
        {
            "scan": scan,
            "prediction": prediction,
            "probabilities": probabilities_for_display(prediction),
            "uncertainty": selectors.prediction_uncertainty(prediction) if prediction else None,
            "reliability": selectors.model_reliability(model_version=prediction.model_version) if prediction else None,
            "performance_alert": (selectors.performance_alert_open(organization=scan.patient.organization_id,
                                                                   model_version=prediction.model_version)
                                  if prediction else None),
            "heatmap_url": _heatmap_url(scan, prediction),
            **_archived(scan, prediction, sent=bool(scan.dicom_study_uid)),
            "pacs_stored": selectors.pacs_stored_of(scan=scan) if scan.is_withdrawn and scan.dicom_study_uid else [],
            "pacs_rejection": selectors.pacs_rejection_of(scan=scan),
            "hl7_delivery": selectors.hl7_sent_of(scan=scan),
            "class_names": class_names,
            "review_form": review_form,
            "review": review,
            "reviews": list(scan.reviews.all()),
            "history": list(scan.predictions.all())[1:],
            "withdrawn_message": services.withdrawn_message(scan) if scan.is_withdrawn else "",
            "withdraw_form": withdraw_form or (
                WithdrawForm() if not scan.is_withdrawn and selectors.scan_may_withdraw(user=request.user, scan=scan)
                else None),
            "restore_form": restore_form or (
                RestoreForm() if scan.is_withdrawn and selectors.scan_may_withdraw(user=request.user, scan=scan)
                else None),
            "withdrawals": selectors.scan_withdrawals(scan=scan),
            "opened_by_other": None if scan.is_withdrawn else selectors.scan_opened_by_other(user=request.user, scan=scan),
            "refilings": refilings,
            "refile_form": refile_form or (
                RefileForm() if scan.is_withdrawn and refiled_as is None
                and selectors.scan_may_withdraw(user=request.user, scan=scan) else None),
            # The filters of the worklist this scan was opened from: "save and open the next" keeps to them.
            "worklist_query": worklist_query,
            "worklist_remaining": (selectors.worklist_remaining(user=request.user, after=scan, filters=filters)
                                   if review_form is not None and not scan.is_withdrawn else None),
        },
        status=status,
    )


@member_required
@require_GET
def scan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    scan = scan_or_404(request, pk)
    _log_access(request, scan, PatientAccess.What.SCAN)
    return _render_scan(request, scan, worklist=worklist_filters(request.GET.get("worklist", "")))


def _log_access(request: HttpRequest, scan: Scan, what: str) -> None:
    services.patient_access_record(user=request.user, patient=scan.patient, scan=scan, what=what,
                                   channel=PatientAccess.Channel.WEB)


def _withdrawal_step(request: HttpRequest, pk: int, form_class, service, done: str, form_name: str) -> HttpResponse:
    scan = scan_or_404(request, pk)
    form = form_class(request.POST)
    if form.is_valid():
        try:
            service(scan=scan, user=request.user, reason=form.cleaned_data["reason"])
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            return redirect("diagnosis:scan_detail", pk=scan.pk)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, done)
            return redirect("diagnosis:scan_detail", pk=scan.pk)
    return _render_scan(request, scan_or_404(request, pk), status=400, **{form_name: form})


@member_required
@post_only("diagnosis:scan_detail")
def scan_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    if request.POST.get("mrn", "").strip():
        return _refile_step(request, scan_or_404(request, pk), WithdrawForm, form_name="withdraw_form")
    return _withdrawal_step(request, pk, WithdrawForm, services.scan_withdraw, form_name="withdraw_form",
                            done="The scan is withdrawn. If the slice was meant for another patient, file it for "
                                 "them below.")


@member_required
@post_only("diagnosis:scan_detail")
def scan_refile(request: HttpRequest, pk: int) -> HttpResponse:
    scan = scan_or_404(request, pk)
    if not scan.is_withdrawn:  # restored since the page was opened: this form has no reason to withdraw it with
        messages.error(request, "This scan is not withdrawn: withdraw it with the reason, and give the right "
                                "patient's MRN beside it.")
        return redirect("diagnosis:scan_detail", pk=scan.pk)
    return _refile_step(request, scan, RefileForm, form_name="refile_form")


def _refile_step(request: HttpRequest, scan: Scan, form_class, form_name: str) -> HttpResponse:
    """Withdraw the scan if it is not yet withdrawn, file its slice for the patient of the MRN given, and
    open the new scan."""
    form = form_class(request.POST)
    if form.is_valid():
        patient = patient_by_mrn(request, form, hint=": register them first")
        if patient is not None:
            try:
                copy = services.scan_refile(scan=scan, patient=patient, user=request.user,
                                            reason=form.cleaned_data.get("reason", ""))
            except PermissionDenied as exc:
                messages.error(request, str(exc))
                return redirect("diagnosis:scan_detail", pk=scan.pk)
            except services.NoActiveModelVersion as exc:
                form.add_error(None, str(exc))
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"The slice is filed for {patient.name} as this new scan, and its diagnosis "
                                          f"is on the way. Scan #{scan.pk} stays withdrawn with {scan.patient.name}.")
                return redirect("diagnosis:scan_detail", pk=copy.pk)
    return _render_scan(request, scan, status=400, **{form_name: form})


@member_required
@post_only("diagnosis:scan_detail")
def scan_restore(request: HttpRequest, pk: int) -> HttpResponse:
    return _withdrawal_step(request, pk, RestoreForm, services.scan_restore, form_name="restore_form",
                            done="The scan is restored: it is back in the worklist, the agreement figures and training.")


@member_required
@post_only("diagnosis:scan_detail")
def scan_review(request: HttpRequest, pk: int) -> HttpResponse:
    scan = scan_or_404(request, pk)
    prediction = scan.latest_prediction
    class_names = list(prediction.model_version.class_names) if prediction else []
    form = ReviewForm(request.POST, class_names=class_names, ai_label=prediction.label if prediction else "")
    filters, worklist_query = worklist_filters(request.POST.get("worklist", ""))
    if form.is_valid():
        try:
            review = services.review_create(scan=scan, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if review.agrees_with_ai is None:
                messages.success(request, f"Review saved: you read the slice as {review.label} (no AI result).")
            elif review.agrees_with_ai:
                messages.success(request, f"Review saved: you confirmed the AI label {review.label}.")
            else:
                messages.success(request, f"Review saved: you corrected the AI label {review.prediction.label} to {review.label}.")
            if request.POST.get("then") == "next":
                return _open_next(request, after=scan, filters=filters, worklist_query=worklist_query)
            return redirect(_scan_url(scan.pk, worklist_query))
    return _render_scan(request, scan_or_404(request, pk), review_form=form, status=400,
                        worklist=(filters, worklist_query))


def _scan_url(pk: int, worklist_query: str) -> str:
    url = reverse("diagnosis:scan_detail", args=[pk])
    return f"{url}?{urlencode({'worklist': worklist_query})}" if worklist_query else url


def _open_next(request: HttpRequest, *, after: Scan, filters: dict[str, Any], worklist_query: str) -> HttpResponse:
    following = selectors.worklist_next(user=request.user, after=after, **filters)
    if following is not None:
        return redirect(_scan_url(following.pk, worklist_query))
    if worklist_query:
        messages.info(request, "No other unreviewed scan matches the worklist's filters.")
        return redirect(f"{reverse('diagnosis:home')}?{worklist_query}")
    messages.info(request, "The worklist is empty: every scan is reviewed.")
    return redirect("diagnosis:home")


@member_required
@post_only("diagnosis:scan_detail")
def scan_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    scan = scan_or_404(request, pk)
    try:
        services.prediction_create(scan=scan)
    except services.NoActiveModelVersion as exc:
        messages.error(request, str(exc))
    except services.DiagnosisPending as exc:
        messages.info(request, str(exc))
    except ValidationError as exc:  # withdrawn since the page was opened
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "A new diagnosis is queued.")
    return redirect("diagnosis:scan_detail", pk=scan.pk)


def _private_file(field, content_type: str) -> FileResponse:
    try:
        handle = field.open("rb")
    except OSError:
        raise Http404("The stored file is missing.") from None
    response = FileResponse(handle, content_type=content_type)
    # Patient data: browsers and proxies must not keep copies.
    response["Cache-Control"] = "private, no-store"
    return response


@member_required
@require_GET
def scan_image(request: HttpRequest, pk: int) -> HttpResponse:
    scan = scan_or_404(request, pk)
    response = _private_file(scan.image, f"image/{scan.format.lower()}")
    services.scan_image_access_record(user=request.user, scan=scan, channel=PatientAccess.Channel.WEB)
    return response


@member_required
@require_GET
@never_cache
def scan_heatmap(request: HttpRequest, pk: int) -> HttpResponse:
    """The heat map PNG of the latest result (?class= for another class: 202 while the worker computes it)."""
    scan = scan_or_404(request, pk)
    try:
        answer = services.heatmap_get_or_request(
            prediction=scan.latest_prediction, class_name=request.GET.get("class") or None
        )
    except ValidationError as exc:
        return JsonResponse({"status": "refused", "detail": " ".join(exc.messages)}, status=400)
    if answer.status == "ready":
        response = _private_file(answer.file, "image/png")
        services.scan_image_access_record(user=request.user, scan=scan, channel=PatientAccess.Channel.WEB)
        return response
    body = {"class": answer.class_name, "status": answer.status, "detail": answer.detail}
    return JsonResponse(body, status=202 if answer.status == "queued" else 503)


@member_required
@require_GET
def scan_report(request: HttpRequest, pk: int) -> HttpResponse:
    scan = scan_or_404(request, pk)
    response = HttpResponse(reports.scan_report_pdf(scan=scan, user=request.user), content_type="application/pdf")
    _log_access(request, scan, PatientAccess.What.REPORT)
    response["Content-Disposition"] = f'attachment; filename="scan-{scan.pk}-report.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response


@member_required
@require_GET
@never_cache
def scan_item(request: HttpRequest, pk: int) -> HttpResponse:
    """One scan as the patient page lists it: what scan_list.js puts in place of an item, or adds."""
    return render(request, "diagnosis/_scan_item.html", {"scan": scan_or_404(request, pk)})


def _archived(scan: Scan, prediction: Prediction | None, *, sent: bool) -> dict[str, Any]:
    """How the result went to the archive, as a capture and as a report, for _pacs_status.html; its status is
    pending while either is on its way, so that the page asks again."""
    forms = selectors.pacs_sent_of(prediction=prediction) if sent else {}
    delivery, report = forms.get(PacsDelivery.Kind.CAPTURE), forms.get(PacsDelivery.Kind.REPORT)
    pending = any(d is not None and d.status == PacsDelivery.Status.PENDING for d in (delivery, report))
    return {"pacs_delivery": delivery, "pacs_report": report,
            "pacs_status": PacsDelivery.Status.PENDING if pending else delivery.status if delivery else ""}


@member_required
@require_GET
@never_cache
def scan_status(request: HttpRequest, pk: int) -> JsonResponse:
    scan = scan_or_404(request, pk)
    prediction = selectors.prediction_latest(user=request.user, scan=scan)
    state = prediction_state(prediction, scan)
    archived = _archived(scan, prediction, sent=bool(scan.dicom_study_uid) and not scan.is_withdrawn)
    rejection = selectors.pacs_rejection_of(scan=scan) if scan.dicom_study_uid else None
    # The scan page's sentences, as it renders them, so that the two never say it differently.
    state["archive"] = {"status": archived["pacs_status"], "html": render_to_string(
        "diagnosis/_pacs_status.html", archived, request=request).strip()} if archived["pacs_delivery"] else None
    state["archive_rejection"] = {"status": rejection.status, "html": render_to_string(
        "diagnosis/_pacs_rejection.html", {"pacs_rejection": rejection}, request=request).strip()} if rejection else None
    hl7_delivery = selectors.hl7_sent_of(scan=scan)
    state["record_system"] = {"status": hl7_delivery.status, "html": render_to_string(
        "diagnosis/_hl7_status.html", {"hl7_delivery": hl7_delivery}, request=request).strip()} if hl7_delivery else None
    review = selectors.review_current(user=request.user, scan=scan)
    state["scan"] = scan.pk
    state["url"] = reverse("diagnosis:scan_detail", kwargs={"pk": scan.pk})
    state["review"] = (
        {"label": review.label, "agrees_with_ai": review.agrees_with_ai, "reviewed_by": review.reviewed_by.get_username()}
        if review else None
    )
    return JsonResponse(state)
