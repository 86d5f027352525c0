"""The home page: the triage worklist; what every member should know about the model (its card); and, for
administrators, the agreement of reviewers with the AI and a model version's performance on the organization's
patients."""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import selectors
from ..forms import WorklistFilterForm
from ..models import ModelVersion
from .common import member_required, organization_admin_required

WORKLIST_PER_PAGE = 25


def _filter_form(data: QueryDict | None) -> WorklistFilterForm:
    return WorklistFilterForm(data, statuses=selectors.WORKLIST_STATUSES, labels=selectors.known_labels())


def _filter_query(filters: dict[str, Any]) -> str:
    return urlencode({name: value.isoformat() if hasattr(value, "isoformat") else value
                      for name, value in filters.items() if value})


def worklist_filters(query: str) -> tuple[dict[str, Any], str]:
    """The filters in a worklist query (what the worklist's Review links pass on to the scan page) and that
    query rebuilt from them. A query that no longer validates (a label retired since the link was made) counts
    as no filter: reading on through the whole worklist beats a dead end."""
    form = _filter_form(QueryDict(query))
    if not query or not form.is_valid():
        return {}, ""
    filters = {name: value for name, value in form.cleaned_data.items() if value}
    return filters, _filter_query(filters)


def _worklist_page(request: HttpRequest):
    form = _filter_form(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    scans = selectors.worklist(user=request.user, **{k: v for k, v in filters.items() if v})
    return form, filters, Paginator(scans, WORKLIST_PER_PAGE).get_page(request.GET.get("page"))


def _admin_warnings(request: HttpRequest) -> dict:
    """Administrators decide on retraining and rollback, so they hear first when the model slips, or when what is
    uploaded stops looking like what it learned from."""
    if not selectors.is_organization_admin(request.user):
        return {"performance_alert": None, "inputs_alert": None}
    organization = selectors.organization_of(request.user)
    return {"performance_alert": selectors.performance_alert_open(organization=organization),
            "inputs_alert": selectors.inputs_alert_open(organization=organization)}


@member_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    form, filters, page = _worklist_page(request)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "diagnosis/worklist.html",
        {"form": form, "page": page, "query": query.urlencode(), "filtered": bool(filters and any(filters.values())),
         "worklist_query": _filter_query(filters), **_admin_warnings(request)},
        status=400 if form.is_bound and not form.is_valid() else 200,
    )


@member_required
@require_GET
@never_cache
def worklist_rows(request: HttpRequest) -> HttpResponse:
    """The rows the worklist would show now, with the same filters and page: what worklist.js compares."""
    form, filters, page = _worklist_page(request)
    if form.is_bound and not form.is_valid():
        return HttpResponse("Invalid filters: " + "; ".join(e for errors in form.errors.values() for e in errors),
                            status=400, content_type="text/plain")
    return render(request, "diagnosis/_worklist_rows.html", {"page": page, "worklist_query": _filter_query(filters)})


@organization_admin_required
@require_GET
def agreement(request: HttpRequest) -> HttpResponse:
    organization = selectors.organization_of(request.user)
    summary = selectors.agreement_summary(organization=organization)
    return render(
        request,
        "diagnosis/agreement.html",
        {"rows": summary.classes, "reviewed": summary.reviewed, "agreed": summary.agreed, "overall": summary.rate,
         "organization": organization},
    )


def _version_asked(request: HttpRequest) -> ModelVersion | None:
    """The model version ``?version=`` names (any version: they are the deployment's, not an organization's);
    None without one; 404 for a number no version has."""
    chosen = request.GET.get("version")
    if not chosen:
        return None
    version = selectors.model_version_get(pk=int(chosen)) if chosen.isdigit() else None
    if version is None:
        raise Http404("There is no model version with that number.")
    return version


@organization_admin_required
@require_GET
def performance(request: HttpRequest) -> HttpResponse:
    """A model version's performance on the organization's reviewed slices next to its card; the active
    version unless ``?version=`` names another."""
    organization = selectors.organization_of(request.user)
    versions = selectors.model_versions_in_use(organization=organization)
    version = _version_asked(request)
    if version is None:
        version = selectors.model_version_watched(organization=organization)
    elif version not in versions:
        versions.append(version)  # a version not yet used here: the page says it made no results
    performance = (selectors.model_performance_in_use(organization=organization, model_version=version)
                   if version else None)
    alerts = selectors.performance_alerts(organization=organization, model_version=version) if version else []
    inputs_alerts = selectors.inputs_alerts(organization=organization, model_version=version) if version else []
    return render(request, "diagnosis/performance.html",
                  {"organization": organization, "versions": versions, "version": version, "performance": performance,
                   "alerts": alerts, "inputs_alerts": inputs_alerts, "min_reviewed": selectors.MIN_REVIEWED,
                   "min_results": selectors.MIN_RESULTS, "recent_weeks": selectors.RECENT_WEEKS,
                   "inputs_judged_every": _every(settings.KIDNEYWEB_INPUTS_JUDGE_SECONDS)})


@organization_admin_required
@require_GET
def performance_weeks_csv(request: HttpRequest) -> HttpResponse:
    """Every week of a version's results in the organization since its first, oldest first, for a spreadsheet or a
    quality report: the page's week-by-week table without its 12-week limit. Counts only, no patient."""
    organization = selectors.organization_of(request.user)
    version = _version_asked(request) or selectors.model_version_watched(organization=organization)
    if version is None:
        raise Http404("No model version has made results here yet.")
    performance = selectors.model_performance_in_use(organization=organization, model_version=version,
                                                     weeks_shown=None)
    labels = [c.name for c in performance.classes]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (f'attachment; filename="performance-{organization.slug}-'
                                       f'{slugify(version.name)}-{timezone.localdate():%Y-%m-%d}.csv"')
    writer = csv.writer(response)
    writer.writerow(["week_of", "results", "failed", "out_of_scope", "uncertain", *labels, "reviewed", "kept",
                     "kept_share"])
    for week in reversed(performance.weeks):
        writer.writerow([week.start.isoformat(), week.diagnosed, week.failed, week.out_of_scope, week.uncertain,
                         *[week.labels.get(label, 0) for label in labels], week.reviewed, week.agreed,
                         "" if week.agreement is None else f"{week.agreement:.4f}"])
    return response


def _every(seconds: int) -> str:
    if seconds % 3600 == 0:
        return "hour" if seconds == 3600 else f"{seconds // 3600} hours"
    minutes = max(1, round(seconds / 60))
    return "minute" if minutes == 1 else f"{minutes} minutes"


@member_required
@require_GET
def model_card(request: HttpRequest) -> HttpResponse:
    """What a clinician should know about the model before leaning on it: the active version's card, or that of
    ``?version=`` (the version that made a result they are reading)."""
    version = _version_asked(request) or selectors.model_version_active()
    card = selectors.model_card_view(model_version=version) if version else None
    return render(request, "diagnosis/model_card.html",
                  {"version": version, "card": card, "is_admin": selectors.is_organization_admin(request.user)})
