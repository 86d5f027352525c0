"""The organization's connections on the Members page: result notifications (webhooks), the archive (PACS) and
the record system (HL7 v2), and erasures the archive was asked to carry out."""

from __future__ import annotations


from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from ... import selectors, services
from ...forms import (
    Hl7Form,
    Hl7SinceForm,
    MemberCreateForm,
    PacsClientCertificateForm,
    PacsOAuthForm,
    PacsForm,
    PacsSinceForm,
    WebhookEventsForm,
    WebhookForm,
)
from ..common import add_service_errors, organization_admin_required, post_only

from .pages import list_page, secret_page


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
            return secret_page(request, member=None, kind="webhook", secret=secret)
    return list_page(request, MemberCreateForm(), status=400, webhook_form=form)


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
    return list_page(request, MemberCreateForm(), status=400, events_form=form)


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
    return list_page(request, MemberCreateForm(), status=400, pacs_form=form)


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
    return list_page(request, MemberCreateForm(), status=400, oauth_form=form)


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
    return list_page(request, MemberCreateForm(), status=400, tls_form=form)


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
    return list_page(request, MemberCreateForm(), status=400, hl7_form=form)


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
    return list_page(request, MemberCreateForm(), status=400, hl7_since_form=form)


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
    return list_page(request, MemberCreateForm(), status=400, since_form=form)


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
@post_only("diagnosis:staff_list")
@never_cache
def staff_scim_token(request: HttpRequest) -> HttpResponse:
    key = services.scim_token_issue(organization=selectors.organization_of(request.user), by=request.user)
    return secret_page(request, member=None, kind="scim", secret=key)


@organization_admin_required
@post_only("diagnosis:staff_list")
def staff_scim_token_revoke(request: HttpRequest) -> HttpResponse:
    if services.scim_token_revoke(organization=selectors.organization_of(request.user), by=request.user):
        messages.success(request, "The SCIM token no longer works: the hospital's directory no longer adds, changes "
                                  "or closes members. Members it added stay as they are.")
    return redirect(f"{reverse('diagnosis:staff_list')}#directory")
