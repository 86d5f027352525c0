"""What every page shares: a logged-in member of an organization, and 404 for other organizations'
objects exactly as for missing ones."""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render

from .. import selectors
from ..models import Membership, Patient, Scan


def member_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if selectors.membership_of(request.user) is None:
            return render(request, "diagnosis/no_membership.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def post_only(page: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A form's target: POST does the work; GET goes to the page ``page`` (same URL arguments) instead of 405.

    A GET arrives when a session expired before the form was sent: the login page sends the user back to
    its ``next``, the form's target, without the form's data.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "POST":
                return view(request, *args, **kwargs)
            if request.method in ("GET", "HEAD"):
                messages.info(request, "Nothing was saved: the form did not arrive (a session that expired "
                              "sends you here after logging in). Please submit it again.")
                return redirect(page, *args, **kwargs)
            return HttpResponseNotAllowed(["POST"])

        return wrapper

    return decorator


def organization_admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Only members with the administrator role of their organization."""

    @member_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if selectors.membership_of(request.user).role != Membership.Role.ADMIN:
            return render(request, "403.html", {"reason": "Only administrators of your organization may see this page."}, status=403)
        return view(request, *args, **kwargs)

    return wrapper


def add_service_errors(form, exc: ValidationError) -> None:
    """Show a service's errors on the matching fields, and the rest above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, messages_ in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


def patient_by_mrn(request: HttpRequest, form, *, hint: str = "") -> Patient | None:
    """The organization's patient with the whole MRN of the form's ``mrn`` field, or None with that field's
    error; ``hint`` completes the error, e.g. ": register them first"."""
    mrn = form.cleaned_data["mrn"].strip()
    patient = selectors.patient_list(user=request.user, mrn=mrn).first()
    if patient is None:
        form.add_error("mrn", f"No patient with MRN {mrn!r} in your organization{hint}.")
    return patient


def patient_or_404(request: HttpRequest, pk: int) -> Patient:
    patient = selectors.patient_get(user=request.user, pk=pk)
    if patient is None:
        raise Http404("No such patient.")
    return patient


def scan_or_404(request: HttpRequest, pk: int) -> Scan:
    scan = selectors.scan_get(user=request.user, pk=pk)
    if scan is None:
        raise Http404("No such scan.")
    return scan
