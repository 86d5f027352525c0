"""The signed-in user's own account: changing the password, two-factor authentication.

Open to anyone logged in, a site superuser outside any organization included: their own account holds nothing of
an organization's, and such a superuser, whom no organization's administrator can reset, most needs an
authenticator with recovery codes."""

from __future__ import annotations

import base64

import django_otp
import segno
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.messages.views import SuccessMessageMixin
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import selectors, services
from ..auth import ThrottledPasswordChangeForm, password_login_allowed
from ..forms import RecoveryCodeForm, TwoFactorCodeForm
from .common import add_service_errors, post_only


class PasswordChangeView(SuccessMessageMixin, auth_views.PasswordChangeView):
    """Django's password change, which keeps this session and ends the others that used the old password."""

    form_class = ThrottledPasswordChangeForm
    template_name = "registration/password_change.html"
    success_url = reverse_lazy("diagnosis:home")
    success_message = "Your password was changed. Anywhere else you were logged in, you are logged out."

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated and not password_login_allowed(request.user):
            messages.error(request, "kidneyweb's own passwords are turned off here: you log in with your hospital "
                                    "account, whose password the hospital changes.")
            return redirect("account")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        membership = selectors.membership_of(self.request.user)
        return super().get_context_data(**kwargs, required=bool(membership and membership.password_change_required))

    def form_valid(self, form):
        response = super().form_valid(form)
        services.member_password_changed(user=form.user)
        return response


def _required(request: HttpRequest) -> bool:
    membership = selectors.membership_of(request.user)
    return bool(membership and membership.organization.require_two_factor)


@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    """The user's own account: who they are here, their password, two-factor authentication."""
    form, renew_form = TwoFactorCodeForm(), TwoFactorCodeForm(prefix="renew")
    for each, purpose in ((form, "to turn it off"), (renew_form, "for new recovery codes")):
        each.fields["code"].widget.attrs.pop("autofocus")  # only asked for as proof, not what the page is for
        each.fields["code"].label = f"Code from your app, {purpose}"  # two such fields: say which is which
    return render(request, "registration/account.html", {
        "membership": selectors.membership_of(request.user),
        "device": selectors.two_factor_device(user=request.user),
        "recovery_codes_left": selectors.recovery_codes_left(user=request.user),
        "required": _required(request),
        # Nothing to change where members log in through the hospital only, or for an account made by the sign-on.
        "has_password": password_login_allowed(request.user) and request.user.has_usable_password(),
        "form": form,
        "renew_form": renew_form,
    })


def _setup_page(request: HttpRequest, device, form: TwoFactorCodeForm, status: int = 200) -> HttpResponse:
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    response = render(request, "registration/two_factor_setup.html", {
        "qr": segno.make(device.config_url, error="m").svg_data_uri(scale=5, dark="#111"),
        "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
        "form": form,
        "replacing": selectors.two_factor_device(user=request.user) is not None,
    }, status=status)
    response["Cache-Control"] = "private, no-store"  # the page holds the secret
    return response


@login_required
@post_only("account")
@never_cache
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    device = services.two_factor_setup_start(user=request.user)
    return _setup_page(request, device, TwoFactorCodeForm())


@login_required
@post_only("account")
@never_cache
def two_factor_confirm(request: HttpRequest) -> HttpResponse:
    form = TwoFactorCodeForm(request.POST)
    if form.is_valid():
        try:
            device, codes = services.two_factor_setup_confirm(user=request.user, token=form.cleaned_data["code"])
        except ValidationError as exc:
            add_service_errors(form, ValidationError({"code": exc.messages}))
        else:
            django_otp.login(request, device)
            messages.success(request, "Two-factor authentication is on: from now on, logging in asks for a code "
                                      "from your authenticator app after your password.")
            return _recovery_codes_page(request, codes)
    device = selectors.two_factor_setup_pending(user=request.user)
    if device is None:
        messages.error(request, "Start the setup again: no new authenticator is waiting to be confirmed.")
        return redirect("account")
    return _setup_page(request, device, form, status=400)


def _recovery_codes_page(request: HttpRequest, codes: tuple[str, ...]) -> HttpResponse:
    response = render(request, "registration/recovery_codes.html", {"codes": codes})
    response["Cache-Control"] = "private, no-store"  # shown once; a cached copy would be a second one
    return response


@login_required
@post_only("account")
@never_cache
def recovery_codes_renew(request: HttpRequest) -> HttpResponse:
    form = TwoFactorCodeForm(request.POST, prefix="renew")
    if not form.is_valid():
        messages.error(request, "Enter a code from your authenticator app to make new recovery codes.")
        return redirect("account")
    try:
        codes = services.recovery_codes_renew(user=request.user, token=form.cleaned_data["code"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("account")
    messages.success(request, "New recovery codes: the earlier ones no longer work.")
    return _recovery_codes_page(request, codes)


@login_required
@post_only("account")
def two_factor_disable(request: HttpRequest) -> HttpResponse:
    form = TwoFactorCodeForm(request.POST)
    if form.is_valid():
        try:
            services.two_factor_disable(user=request.user, token=form.cleaned_data["code"])
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Two-factor authentication is off: logging in asks for your password only.")
    else:
        messages.error(request, "Enter a code from your authenticator app to turn it off.")
    return redirect("account")


def safe_next_url(request: HttpRequest) -> str:
    """The ``next`` page asked for (form or query), if it is on this site; "" otherwise."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return ""
    return next_url


def _second_step(request: HttpRequest, form_class, check, template: str, on_success=None) -> HttpResponse:
    """The second step of logging in: a code checked by ``check(user, code)``, which answers the device
    that confirms the login, then on to where the user was going."""
    next_url = safe_next_url(request)
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = check(request.user, form.cleaned_data["code"])
        except ValidationError as exc:
            add_service_errors(form, ValidationError({"code": exc.messages}))
        else:
            django_otp.login(request, device)
            if on_success is not None:
                on_success(request)
            return redirect(next_url or "diagnosis:home")
    return render(request, template, {"form": form, "next": next_url}, status=400 if form.is_bound else 200)


@login_required
@never_cache
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """The second step of logging in, for members with an authenticator."""
    return _second_step(request, TwoFactorCodeForm, lambda user, code: services.two_factor_check(user=user, token=code),
                        "registration/two_factor_verify.html")


def _recovery_code_used(request: HttpRequest) -> None:
    left = selectors.recovery_codes_left(user=request.user) or 0
    messages.warning(request, f"You logged in with a recovery code; {left} of your codes are left. "
                              "If your phone is lost, set up your authenticator app on a new one under Account, "
                              "which also gives you new codes.")


@login_required
@never_cache
def two_factor_recover(request: HttpRequest) -> HttpResponse:
    """The second step of logging in with a recovery code, for a member whose phone is not at hand."""
    return _second_step(request, RecoveryCodeForm, lambda user, code: services.two_factor_recover(user=user, code=code),
                        "registration/two_factor_recover.html", on_success=_recovery_code_used)
