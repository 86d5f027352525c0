"""Administrators' pages: start and follow training runs, compare model versions, promote and roll back."""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from diagnosis import selectors as diagnosis_selectors
from diagnosis.views.common import post_only

from . import selectors, services
from .forms import PromoteForm, TrainingRunForm
from .models import TrainingRun

RUNS_SHOWN = 20


def admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not selectors.is_training_admin(request.user):
            raise PermissionDenied("Only administrators can train and promote models.")
        return view(request, *args, **kwargs)

    return wrapper


def _run_or_404(request: HttpRequest, pk: int) -> TrainingRun:
    run = selectors.training_run_get(pk=pk, organization=diagnosis_selectors.organization_of(request.user))
    if run is None:
        raise Http404("No such training run.")
    return run


def _version_or_404(pk: int):
    version = selectors.model_version_get(pk=pk)
    if version is None:
        raise Http404("No such model version.")
    return version


@admin_required
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    services.training_runs_fail_orphaned()
    form = TrainingRunForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                run = services.training_run_start(
                    requested_by=request.user, data=form.cleaned_data["data"], preset=form.cleaned_data["preset"],
                    overrides=form.overrides(), organization=diagnosis_selectors.organization_of(request.user),
                )
            except services.TrainingRunConflict as exc:
                form.add_error(None, exc.message)
                status = 409
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                messages.success(request, f"Training run {run.pk} is queued on the training worker.")
                return redirect("training:run_detail", pk=run.pk)
    organization = diagnosis_selectors.organization_of(request.user)
    current = selectors.training_run_current()
    context = {
        "form": form,
        "current": current,
        "current_visible": current is not None and selectors.training_run_is_visible(run=current, organization=organization),
        "runs": selectors.training_run_list(organization=organization)[:RUNS_SHOWN],
    }
    return render(request, "training/index.html", context, status=status)


def run_state(run: TrainingRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "status": run.status,
        "status_display": run.get_status_display(),
        "final": run.is_final,
        "stage": run.stage,
        "epoch": run.epoch,
        "epochs": run.epochs,
        "metrics": run.metrics,
        "history": run.history,
        "elapsed_seconds": run.elapsed_seconds,
        "eta_seconds": run.eta_seconds,
        "cancel_requested": run.cancel_requested,
        "failure_reason": run.failure_reason,
        "model_version": run.model_version_id,
        "model_version_name": run.model_version.name if run.model_version else None,
        "log_tail": run.log[-20000:],
    }


@admin_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    services.training_runs_fail_orphaned()
    run = _run_or_404(request, pk)
    return render(request, "training/run_detail.html", {"run": run, "state": run_state(run)})


@admin_required
@require_GET
@never_cache
def run_status(request: HttpRequest, pk: int) -> JsonResponse:
    services.training_runs_fail_orphaned()
    return JsonResponse(run_state(_run_or_404(request, pk)))


@admin_required
@require_GET
def run_log(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(_run_or_404(request, pk).log, content_type="text/plain; charset=utf-8")


@admin_required
@post_only("training:run_detail")
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run_or_404(request, pk)
    try:
        run = services.training_run_cancel(run=run)
    except services.TrainingRunFinished as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Cancelled." if run.is_final else "Cancelling: the run stops at the end of its current epoch.")
    return redirect("training:run_detail", pk=pk)


@admin_required
@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    versions = selectors.attach_locked_test_evaluations(list(selectors.model_version_list()))
    return render(request, "training/model_list.html", {
        "versions": versions,
        "test_set": selectors.locked_test_set_latest(),
        "promotions": selectors.promotion_list()[:50],
    })


def _render_model(request: HttpRequest, version, form: PromoteForm, status: int = 200) -> HttpResponse:
    version = selectors.attach_locked_test_evaluations([version])[0]
    training_run = getattr(version, "training_run", None)
    gate = selectors.promotion_gate(candidate=version)
    rows = []
    candidate, baseline = gate.get("candidate"), gate.get("baseline")
    if candidate and baseline:
        rows.append({"name": "Macro-F1", "candidate": candidate["macro_f1"], "baseline": baseline["macro_f1"],
                     "gated": True})
        # A class only one of the two knows gets a row with a blank on the other side (the gate refuses then).
        rows += [{"name": f"Recall {name}", "candidate": candidate["recall"].get(name),
                  "baseline": baseline["recall"].get(name), "gated": True}
                 for name in sorted(set(candidate["recall"]) | set(baseline["recall"]))]
        rows.append({"name": "Accuracy", "candidate": candidate["accuracy"], "baseline": baseline["accuracy"],
                     "gated": False})
        rows.append({"name": "Expected calibration error (lower is better)",
                     "candidate": candidate["expected_calibration_error"],
                     "baseline": baseline["expected_calibration_error"], "gated": False})
        for row in rows:
            both = row["candidate"] is not None and row["baseline"] is not None
            row["delta"] = row["candidate"] - row["baseline"] if both else None
    return render(request, "training/model_detail.html", {
        "version": version,
        "active": diagnosis_selectors.model_version_active(),
        "gate": gate,
        "rows": rows,
        "form": form,
        "was_active": selectors.model_version_was_active(model_version=version),
        "patients_read": selectors.model_version_patients_read(model_version=version),
        "training_run_visible": training_run is not None and selectors.training_run_is_visible(
            run=training_run, organization=diagnosis_selectors.organization_of(request.user)),
    }, status=status)


@admin_required
@require_GET
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_model(request, _version_or_404(pk), PromoteForm())


def _change(request: HttpRequest, pk: int, change: Callable[..., Any], verb: str) -> HttpResponse:
    version = _version_or_404(pk)
    form = PromoteForm(request.POST)
    if form.is_valid():
        try:
            promotion = change(model_version=version, user=request.user, reason=form.cleaned_data["reason"])
        except services.PromotionRefused as exc:
            form.add_error(None, exc.message)
            return _render_model(request, version, form, status=409)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            if promotion is None:
                messages.info(request, f"{version.name} is already the active version.")
            else:
                messages.success(request, f"{version.name} is now the active version ({verb}). The next uploads use it.")
            return redirect("training:model_detail", pk=pk)
    return _render_model(request, version, form, status=400)


@admin_required
@post_only("training:model_detail")
def model_promote(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, services.model_version_promote, "promoted")


@admin_required
@post_only("training:model_detail")
def model_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, services.model_version_rollback, "rolled back")


@admin_required
@post_only("training:model_detail")
def model_evaluate(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version_or_404(pk)
    try:
        services.model_version_evaluation_request(model_version=version)
    except services.EvaluationNotQueued as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"The evaluation of {version.name} on the locked test series is queued on the training worker.")
    return redirect("training:model_detail", pk=pk)
