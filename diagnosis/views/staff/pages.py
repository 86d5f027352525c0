"""What the Members page shows, for the views of members and of the organization's connections."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from ... import selectors, sso
from ...forms import (
    AccessLogExportForm,
    ApiTokenPolicyForm,
    Hl7Form,
    Hl7SinceForm,
    MemberCreateForm,
    PacsClientCertificateForm,
    PacsOAuthForm,
    PacsForm,
    PacsSinceForm,
    TwoFactorPolicyForm,
    WebhookEventsForm,
    WebhookForm,
)
from ...models import Membership


RECENT_DELIVERIES = 10
RECENT_REFUSALS = 20
RECENT_CHANGES = 50
RECENT_ERASURES = 20


def member_or_404(request: HttpRequest, user_id: int) -> Membership:
    membership = selectors.organization_member_get(organization=selectors.organization_of(request.user),
                                                   user_id=user_id)
    if membership is None:
        raise Http404("No such member.")
    return membership


def list_page(request: HttpRequest, form: MemberCreateForm, status: int = 200,
               export_form: AccessLogExportForm | None = None, webhook_form: WebhookForm | None = None,
               events_form: WebhookEventsForm | None = None, pacs_form: PacsForm | None = None,
               since_form: PacsSinceForm | None = None,
               tls_form: PacsClientCertificateForm | None = None,
               token_policy_form: ApiTokenPolicyForm | None = None,
               oauth_form: PacsOAuthForm | None = None, hl7_form: Hl7Form | None = None,
               hl7_since_form: Hl7SinceForm | None = None,
               changes_form: AccessLogExportForm | None = None) -> HttpResponse:
    organization = selectors.organization_of(request.user)
    members = list(selectors.organization_members(organization=organization))
    for member in members:
        member.login_locked = selectors.member_login_locked(member)
    return render(request, "diagnosis/staff_list.html", {
        "organization": organization,
        "members": members,
        "form": form,
        "export_form": export_form or AccessLogExportForm(),
        "changes_form": changes_form or AccessLogExportForm(prefix="changes"),
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
        "scim_token": selectors.scim_token_of(organization=organization),
        "sign_on": sso.enabled(),
        "password_login": settings.KIDNEYWEB_PASSWORD_LOGIN,
        "scim_base": request.build_absolute_uri(reverse("scim-users")).removesuffix("/Users"),
        "changes": selectors.staff_changes(organization=organization)[:RECENT_CHANGES],
        "erasures": selectors.erasures(organization=organization)[:RECENT_ERASURES],
        "erasure_archive_days": settings.KIDNEYWEB_ERASURE_ARCHIVE_DAYS,
        "now": timezone.now(),
    }, status=status)


def secret_page(request: HttpRequest, *, member, kind: str, secret: str) -> HttpResponse:
    """Show a new password, token or notification secret (``member`` None) once: it is never shown again."""
    organization = selectors.organization_of(request.user)
    token = selectors.api_token_of(user=member) if kind == "token" else None
    response = render(request, "diagnosis/staff_secret.html", {
        "member": member, "kind": kind, "secret": secret, "organization": organization,
        "expires": token.expires_at(organization.api_token_days) if token else None})
    response["Cache-Control"] = "private, no-store"
    return response
