"""Organization administrators manage their organization's members (services.staff does the work)."""

from __future__ import annotations

import csv
from typing import Callable, Iterator

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import access_log, selectors, services
from ..forms import (
    AccessLogExportForm,
    ApiTokenPolicyForm,
    Hl7Form,
    Hl7SinceForm,
    MemberCreateForm,
    MemberDeactivateForm,
    MemberRoleForm,
    PacsClientCertificateForm,
    PacsOAuthForm,
    PacsForm,
    PacsSinceForm,
    TwoFactorPolicyForm,
    WebhookEventsForm,
    WebhookForm,
)
from ..models import Membership
from .common import add_service_errors, organization_admin_required, post_only

RECENT_DELIVERIES = 10
RECENT_REFUSALS = 20
RECENT_CHANGES = 50
RECENT_ERASURES = 20


def _member_or_404(request: HttpRequest, user_id: int) -> Membership:
    membership = selectors.organization_member_get(organization=selectors.organization_of(request.user),
                                                   user_id=user_id)
    if membership is None:
        raise Http404("No such member.")
    return membership


def _list_page(request: HttpRequest, form: MemberCreateForm, status: int = 200,
               export_form: AccessLogExportForm | None = None, webhook_form: WebhookForm | None = None,
               events_form: WebhookEventsForm | None = None, pacs_form: PacsForm | None = None,
               since_form: PacsSinceForm | None = None,
               tls_form: PacsClientCertificateForm | None = None,
               token_policy_form: ApiTokenPolicyForm | None = None,
               oauth_form: PacsOAuthForm | None = None, hl7_form: Hl7Form | None = None,
               hl7_since_form: Hl7SinceForm | None = None) -> HttpResponse:
    organization = selectors.organization_of(request.user)
    members = list(selectors.organization_members(organization=organization))
    for member in members:
        member.login_locked = selectors.member_login_locked(member)
    return render(request, "diagnosis/staff_list.html", {
        "organization": organization,
        "members": members,
        "form": form,
        "export_form": export_form or AccessLogExportForm(),
        "policy_form": TwoFactorPolicyForm(initial={"require_two_factor": organization.require_two_factor}),
        "token_policy_form": token_policy_form or ApiTokenPolicyForm(
            initial={"api_token_days": organization.api_token_days}),
        "webhook_form": webhook_form or WebhookForm(initial={"url": organization.webhook_url}),
        "events_form": events_form or WebhookEventsForm(initial={"events": organization.webhook_events}),
        "deliveries": selectors.webhook_deliveries(organization=organization)[:RECENT_DELIVERIES],
        "refusals": selectors.dicom_store_refusals(organization=organization)[:RECENT_REFUSALS],
        "dicom_ae_title": settings.KIDNEYWEB_DICOM_AE_TITLE,
        "pacs_form": pacs_form or PacsForm(initial={"url": organization.pacs_url, "username": organization.pacs_username,
                                                  "send_reports": organization.pacs_send_reports}),
        "since_form": since_form or PacsSinceForm(),
        "tls_form": tls_form or PacsClientCertificateForm(),
        "oauth_form": oauth_form or PacsOAuthForm(initial={
            "token_url": organization.pacs_token_url, "client_id": organization.pacs_client_id,
            "scope": organization.pacs_scope}),
        "client_certificate": selectors.archive_client_certificate(organization=organization),
        "pacs_deliveries": selectors.pacs_deliveries(organization=organization)[:RECENT_DELIVERIES],
        "pacs_failed": selectors.pacs_deliveries(organization=organization).filter(status="failed").exists(),
        "hl7_form": hl7_form or Hl7Form(initial={
            "address": organization.hl7_address, "receiving_application": organization.hl7_receiving_application,
            "receiving_facility": organization.hl7_receiving_facility}),
        "hl7_deliveries": selectors.hl7_deliveries(organization=organization)[:RECENT_DELIVERIES],
        "hl7_since_form": hl7_since_form or Hl7SinceForm(),
        "hl7_failed": selectors.hl7_deliveries(organization=organization).filter(status="failed").exists(),
        "dicomweb_base": request.build_absolute_uri(reverse("api:dicomweb-studies")).removesuffix("/studies"),
        "changes": selectors.staff_changes(organization=organization)[:RECENT_CHANGES],
        "erasures": selectors.erasures(organization=organization)[:RECENT_ERASURES],
        "erasure_archive_days": settings.KIDNEYWEB_ERASURE_ARCHIVE_DAYS,
        "now": timezone.now(),
    }, status=status)


def _secret_page(request: HttpRequest, *, member, kind: str, secret: str) -> HttpResponse:
    """Show a new password, token or notification secret (``member`` None) once: it is never shown again."""
    organization = selectors.organization_of(request.user)
    token = selectors.api_token_of(user=member) if kind == "token" else None
    response = render(request, "diagnosis/staff_secret.html", {
        "member": member, "kind": kind, "secret": secret, "organization": organization,
        "expires": token.expires_at(organization.api_token_days) if token else None})
    response["Cache-Control"] = "private, no-store"
    return response


@organization_admin_required
@require_GET
def staff_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request, MemberCreateForm())


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
            return _secret_page(request, member=user, kind="password", secret=password)
    return _list_page(request, form, status=400)


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
        return _list_page(request, MemberCreateForm(), status=400, token_policy_form=form)
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
@post_only("diagnosis:staff_list")
@never_cache
def staff_webhook(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            secret = services.webhook_set(organization=selectors.organization_of(request.user),
                                          url=form.cleaned_data["url"], by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if secret is None:
                messages.success(request, "Result notifications are off.")
                return redirect("diagnosis:staff_list")
            return _secret_page(request, member=None, kind="webhook", secret=secret)
    return _list_page(request, MemberCreateForm(), status=400, webhook_form=form)


def _to_notifications() -> HttpResponse:
    response = redirect("diagnosis:staff_list")
    response["Location"] += "#notifications"
    return response


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_webhook_events(request: HttpRequest) -> HttpResponse:
    form = WebhookEventsForm(request.POST)
    if form.is_valid():
        chosen = services.webhook_events_set(organization=selectors.organization_of(request.user),
                                             events=form.cleaned_data["events"], by=request.user)
        messages.success(request, "Notifications are sent of " + (", ".join(chosen) or "no events") + ".")
        return _to_notifications()
    return _list_page(request, MemberCreateForm(), status=400, events_form=form)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_webhook_test(request: HttpRequest) -> HttpResponse:
    try:
        services.webhook_ping(organization=selectors.organization_of(request.user), by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "A test notification is on its way: see how it went under Latest notifications.")
    return _to_notifications()


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_webhook_send_again(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = selectors.webhook_delivery_get(organization=selectors.organization_of(request.user), pk=pk)
    if delivery is None:
        raise Http404("No such notification.")
    try:
        services.webhook_send_again(delivery=delivery, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The {delivery.event} notification of {timezone.localtime(delivery.created_at):%Y-%m-%d %H:%M} "
                                  "is being sent again.")
    return _to_notifications()


def _to_pacs() -> HttpResponse:
    response = redirect("diagnosis:staff_list")
    response["Location"] += "#pacs"
    return response


@organization_admin_required
@post_only("diagnosis:staff_list")
@never_cache
def staff_pacs(request: HttpRequest) -> HttpResponse:
    form = PacsForm(request.POST)
    if form.is_valid():
        try:
            organization = services.pacs_set(organization=selectors.organization_of(request.user), by=request.user,
                                             **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Each finished AI result of a DICOM slice is now sent to the archive." if
                             organization.pacs_url else "AI results are no longer sent to the archive.")
            return _to_pacs()
    return _list_page(request, MemberCreateForm(), status=400, pacs_form=form)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_pacs_oauth(request: HttpRequest) -> HttpResponse:
    form = PacsOAuthForm(request.POST)
    if form.is_valid():
        try:
            organization = services.pacs_oauth_set(organization=selectors.organization_of(request.user),
                                                   by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "kidneyweb now authenticates to the archive with OAuth 2.0 bearer tokens." if
                             organization.pacs_token_url else "kidneyweb no longer uses OAuth 2.0 with the archive.")
            return _to_pacs()
    return _list_page(request, MemberCreateForm(), status=400, oauth_form=form)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_pacs_certificate(request: HttpRequest) -> HttpResponse:
    organization = selectors.organization_of(request.user)
    if request.POST.get("remove"):
        services.pacs_client_certificate_set(organization=organization, certificate="", key="", by=request.user)
        messages.success(request, "kidneyweb no longer presents a client certificate to the archive.")
        return _to_pacs()
    form = PacsClientCertificateForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            services.pacs_client_certificate_set(organization=organization, by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "kidneyweb now presents this client certificate to the archive over TLS.")
            return _to_pacs()
    return _list_page(request, MemberCreateForm(), status=400, tls_form=form)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_pacs_check(request: HttpRequest) -> HttpResponse:
    try:
        answer = services.pacs_check(organization=selectors.organization_of(request.user))
    except ValidationError as exc:
        messages.error(request, "The archive could not be used: " + " ".join(exc.messages))
    else:
        messages.success(request, answer)
    return _to_pacs()


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_pacs_send_again(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = selectors.pacs_delivery_get(organization=selectors.organization_of(request.user), pk=pk)
    if delivery is None:
        raise Http404("No such result sent to the archive.")
    try:
        services.pacs_send_again(delivery=delivery, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        what = {delivery.Kind.REJECTION: "rejection note", delivery.Kind.REPORT: "structured report"}.get(
            delivery.kind, "result")
        of = f"scan #{delivery.scan_id}" if delivery.scan_id else f"erased record (erasure #{delivery.erasure_id})"
        messages.success(request, f"The {what} of {of} is being sent to the archive again.")
    return _to_pacs()


def _to_hl7() -> HttpResponse:
    response = redirect("diagnosis:staff_list")
    response["Location"] += "#hl7"
    return response


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_hl7(request: HttpRequest) -> HttpResponse:
    form = Hl7Form(request.POST)
    if form.is_valid():
        try:
            organization = services.hl7_feed_set(organization=selectors.organization_of(request.user), by=request.user,
                                                 **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Each change of a scan's result is now sent to the record system (HL7 v2)." if
                             organization.hl7_address else "Results are no longer sent to the record system.")
            return _to_hl7()
    return _list_page(request, MemberCreateForm(), status=400, hl7_form=form)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_hl7_send_since(request: HttpRequest) -> HttpResponse:
    form = Hl7SinceForm(request.POST)
    if form.is_valid():
        try:
            sent = services.hl7_send_since(organization=selectors.organization_of(request.user),
                                           since=form.cleaned_data["since"], by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{sent} earlier result{'s are' if sent != 1 else ' is'} being sent to the "
                                      "record system.")
            return _to_hl7()
    return _list_page(request, MemberCreateForm(), status=400, hl7_since_form=form)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_hl7_send_failed_again(request: HttpRequest) -> HttpResponse:
    try:
        sent = services.hl7_send_failed_again(organization=selectors.organization_of(request.user), by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The result{'s' if sent != 1 else ''} of {sent} scan{'s are' if sent != 1 else ' is'} "
                                  "being sent to the record system again.")
    return _to_hl7()


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_hl7_send_again(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = selectors.hl7_delivery_get(organization=selectors.organization_of(request.user), pk=pk)
    if delivery is None:
        raise Http404("No such message to the record system.")
    try:
        services.hl7_send_again(delivery=delivery, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The result of scan #{delivery.scan_id} is being sent to the record system again.")
    return _to_hl7()


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_erasure_give_up(request: HttpRequest, pk: int) -> HttpResponse:
    erasure = selectors.erasure_get(organization=selectors.organization_of(request.user), pk=pk)
    if erasure is None:
        raise Http404("No such erasure.")
    try:
        services.pacs_erasure_give_up(erasure=erasure, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The archive is no longer asked to delete the results of erasure #{erasure.pk}, "
                                  "and the patient's details its notes kept are forgotten. Delete those results in "
                                  "the archive by hand if it still shows them.")
    return redirect(f"{reverse('diagnosis:staff_list')}#erasures")


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_pacs_send_since(request: HttpRequest) -> HttpResponse:
    form = PacsSinceForm(request.POST)
    if form.is_valid():
        try:
            sent = services.pacs_send_since(organization=selectors.organization_of(request.user),
                                            since=form.cleaned_data["since"], by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{sent} earlier result{'s are' if sent != 1 else ' is'} being sent to the archive.")
            return _to_pacs()
    return _list_page(request, MemberCreateForm(), status=400, since_form=form)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_pacs_send_failed_again(request: HttpRequest) -> HttpResponse:
    try:
        sent = services.pacs_send_failed_again(organization=selectors.organization_of(request.user), by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{sent} result{'s are' if sent != 1 else ' is'} being sent to the archive again.")
    return _to_pacs()


@organization_admin_required
@require_GET
def staff_member(request: HttpRequest, user_id: int) -> HttpResponse:
    membership = _member_or_404(request, user_id)
    return render(request, "diagnosis/staff_member.html", {
        "membership": membership,
        "member": membership.user,
        "login_locked": selectors.member_login_locked(membership),
        "now": timezone.now(),
        "is_self": membership.user_id == request.user.pk,
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
        membership = _member_or_404(request, user_id)
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
    return _secret_page(request, member=membership.user, kind="password", secret=password)


@_member_action
def staff_unlock(request: HttpRequest, membership: Membership) -> str:
    services.member_unlock(**_args(request, membership))
    return f"{membership.user.get_username()} may try their password again."


@_member_action
def staff_token(request: HttpRequest, membership: Membership) -> HttpResponse:
    key = services.member_api_token_issue(**_args(request, membership))
    return _secret_page(request, member=membership.user, kind="token", secret=key)


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


@organization_admin_required
@require_GET
def staff_access_log(request: HttpRequest) -> HttpResponse:
    """The organization's access log as CSV, for a privacy officer's audit."""
    form = AccessLogExportForm(request.GET)
    if not form.is_valid():
        return _list_page(request, MemberCreateForm(), status=400, export_form=form)
    organization = selectors.organization_of(request.user)
    accesses = selectors.organization_accesses(organization=organization, **form.cleaned_data)
    zone = timezone.get_current_timezone()

    def rows() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield writer.writerow(access_log.header(with_patient=True))
        for access in accesses.iterator(chunk_size=2000):
            yield writer.writerow(access_log.row(access, zone=zone, with_patient=True))

    days = "-".join(d.isoformat() for d in (form.cleaned_data["since"], form.cleaned_data["until"]) if d) or "all"
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="access-log-{organization.slug}-{days}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response
