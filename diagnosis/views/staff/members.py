"""Organization administrators manage their organization's members (services.staff does the work)."""

from __future__ import annotations

import csv
import itertools
from typing import Callable, Iterator

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ... import access_log, access_review, selectors, services
from ...forms import (
    AccessLogExportForm,
    ApiTokenPolicyForm,
    MemberCreateForm,
    MemberDeactivateForm,
    MemberRoleForm,
    TwoFactorPolicyForm,
)
from ...models import Membership
from ..common import add_service_errors, organization_admin_required, post_only

from .pages import RECENT_CHANGES, list_page, member_or_404, secret_page


@organization_admin_required
@require_GET
def staff_list(request: HttpRequest) -> HttpResponse:
    return list_page(request, MemberCreateForm())


@organization_admin_required
@post_only("diagnosis:staff_list")
@never_cache
def staff_create(request: HttpRequest) -> HttpResponse:
    form = MemberCreateForm(request.POST)
    if form.is_valid():
        try:
            user, password = services.member_create(organization=selectors.organization_of(request.user),
                                                    by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if password:
                return secret_page(request, member=user, kind="password", secret=password)
            messages.success(request, f"{user.get_username()} is added: they log in with their hospital account, whose "
                                      "username must be this one.")
            return redirect("diagnosis:staff_member", user_id=user.pk)
    return list_page(request, form, status=400)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_policy(request: HttpRequest) -> HttpResponse:
    form = TwoFactorPolicyForm(request.POST)
    required = form.is_valid() and form.cleaned_data["require_two_factor"]
    services.organization_two_factor_require(organization=selectors.organization_of(request.user), required=required,
                                             by=request.user)
    messages.success(request, "Every member now needs two-factor authentication: those without it set it up at "
                              "their next request." if required else "Two-factor authentication is now up to each member.")
    return redirect("diagnosis:staff_list")


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_token_policy(request: HttpRequest) -> HttpResponse:
    form = ApiTokenPolicyForm(request.POST)
    if not form.is_valid():
        return list_page(request, MemberCreateForm(), status=400, token_policy_form=form)
    days = form.cleaned_data["api_token_days"]
    expired = services.organization_api_token_days_set(organization=selectors.organization_of(request.user),
                                                       days=days, by=request.user)
    if not days:
        messages.success(request, "API tokens now work until they are replaced or revoked.")
    else:
        messages.success(request, f"API tokens now stop working {days} days after they were issued."
                         + (f" {expired} token{'s are' if expired != 1 else ' is'} older and stopped working: issue "
                            "new ones on the members' pages." if expired else ""))
    return redirect("diagnosis:staff_list")


@organization_admin_required
@require_GET
def staff_member(request: HttpRequest, user_id: int) -> HttpResponse:
    membership = member_or_404(request, user_id)
    return render(request, "diagnosis/staff_member.html", {
        "membership": membership,
        "member": membership.user,
        "login_locked": selectors.member_login_locked(membership),
        "now": timezone.now(),
        "is_self": membership.user_id == request.user.pk,
        "password_login": settings.KIDNEYWEB_PASSWORD_LOGIN,
        "role_form": MemberRoleForm(initial={"role": membership.role}),
        "deactivate_form": MemberDeactivateForm(),
        "changes": selectors.staff_changes(organization=membership.organization, member_id=membership.user_id)[:RECENT_CHANGES],
        "accesses": selectors.member_accesses(organization=membership.organization, member_id=membership.user_id)[:RECENT_CHANGES],
    })


def _member_action(view: Callable[[HttpRequest, Membership], HttpResponse | str | None]):
    """A POST on one member: run the change, then back to the member's page with what happened or why
    not. A view returns a message, or a response of its own (a secret shown once)."""

    @organization_admin_required
    @post_only("diagnosis:staff_member")
    @never_cache
    def wrapper(request: HttpRequest, user_id: int) -> HttpResponse:
        membership = member_or_404(request, user_id)
        try:
            result = view(request, membership)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if isinstance(result, HttpResponse):
                return result
            if result:
                messages.success(request, result)
        return redirect("diagnosis:staff_member", user_id=user_id)

    wrapper.__name__ = view.__name__
    return wrapper


def _args(request: HttpRequest, membership: Membership) -> dict:
    return {"organization": membership.organization, "member": membership.user, "by": request.user}


@_member_action
def staff_role(request: HttpRequest, membership: Membership) -> str | None:
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        raise ValidationError("Choose a role: " + ", ".join(label for _, label in Membership.Role.choices) + ".")
    membership = services.member_role_set(role=form.cleaned_data["role"], **_args(request, membership))
    return f"{membership.user.get_username()} is now {membership.get_role_display().lower()}."


@_member_action
def staff_deactivate(request: HttpRequest, membership: Membership) -> str:
    form = MemberDeactivateForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    services.member_deactivate(reason=reason, **_args(request, membership))
    return (f"{membership.user.get_username()} is deactivated: they can no longer log in or use the API. "
            "Their reviews and uploads keep their name.")


@_member_action
def staff_reactivate(request: HttpRequest, membership: Membership) -> str:
    services.member_reactivate(**_args(request, membership))
    return f"{membership.user.get_username()} can log in again."


@_member_action
def staff_password(request: HttpRequest, membership: Membership) -> HttpResponse:
    password = services.member_password_reset(**_args(request, membership))
    return secret_page(request, member=membership.user, kind="password", secret=password)


@_member_action
def staff_unlock(request: HttpRequest, membership: Membership) -> str:
    services.member_unlock(**_args(request, membership))
    return f"{membership.user.get_username()} may try their password again."


@_member_action
def staff_token(request: HttpRequest, membership: Membership) -> HttpResponse:
    key = services.member_api_token_issue(**_args(request, membership))
    return secret_page(request, member=membership.user, kind="token", secret=key)


@_member_action
def staff_token_revoke(request: HttpRequest, membership: Membership) -> str:
    services.member_api_token_revoke(**_args(request, membership))
    return f"{membership.user.get_username()}'s API token no longer works."


@_member_action
def staff_two_factor_reset(request: HttpRequest, membership: Membership) -> str:
    services.member_two_factor_reset(**_args(request, membership))
    return (f"{membership.user.get_username()}'s authenticator app no longer works; they set up a new one "
            "at their next login if your organization requires it, or when they choose to.")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _days(form: AccessLogExportForm) -> str:
    return "-".join(d.isoformat() for d in (form.cleaned_data["since"], form.cleaned_data["until"]) if d) or "all"


def _csv(rows: Iterator[list[str]], header: list[str], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in itertools.chain([header], rows))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@organization_admin_required
@require_GET
def staff_members_csv(request: HttpRequest) -> HttpResponse:
    """Every member as they stand now, for an access review: who can open patient records, and how."""
    organization = selectors.organization_of(request.user)
    zone = timezone.get_current_timezone()
    members = selectors.organization_members(organization=organization)
    return _csv((access_review.member_row(member, zone=zone) for member in members), access_review.MEMBER_HEADER,
                f"members-{organization.slug}-{timezone.localdate().isoformat()}.csv")


@organization_admin_required
@require_GET
def staff_changes_csv(request: HttpRequest) -> HttpResponse:
    """Every change to members and settings in a range of days, oldest first, for an access review."""
    form = AccessLogExportForm(request.GET, prefix="changes")
    if not form.is_valid():
        return list_page(request, MemberCreateForm(), status=400, changes_form=form)
    organization = selectors.organization_of(request.user)
    zone = timezone.get_current_timezone()
    changes = selectors.staff_changes_between(organization=organization, **form.cleaned_data)
    return _csv((access_review.change_row(change, zone=zone) for change in changes.iterator(chunk_size=2000)),
                access_review.CHANGE_HEADER, f"member-changes-{organization.slug}-{_days(form)}.csv")


@organization_admin_required
@require_GET
def staff_access_log(request: HttpRequest) -> HttpResponse:
    """The organization's access log as CSV, for a privacy officer's audit."""
    form = AccessLogExportForm(request.GET)
    if not form.is_valid():
        return list_page(request, MemberCreateForm(), status=400, export_form=form)
    organization = selectors.organization_of(request.user)
    accesses = selectors.organization_accesses(organization=organization, **form.cleaned_data)
    zone = timezone.get_current_timezone()
    return _csv((access_log.row(access, zone=zone, with_patient=True) for access in accesses.iterator(chunk_size=2000)),
                access_log.header(with_patient=True), f"access-log-{organization.slug}-{_days(form)}.csv")
