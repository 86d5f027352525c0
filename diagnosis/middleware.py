"""Before anything else, a logged-in member may have to confirm the login with their authenticator app,
replace a temporary password, or set up two-factor authentication that their organization requires."""

from __future__ import annotations

from typing import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from . import selectors


# Set in the session of a login through the hospital's sign-on (views.sso.sso_callback).
SIGNED_ON = "kidneyweb_signed_on"


class AccountGateMiddleware:
    """Each gate opens only its own pages (and logging out) until it is passed, in this order:

    1. A member with an authenticator confirms the login with a code: the password alone opens nothing.
    2. A temporary password, which an administrator handed over and others may have seen, is replaced.
    3. Where the organization requires two-factor authentication, a member without it sets it up.

    A login through the hospital's sign-on passes 2 and 3: the hospital's identity provider owns the password
    and the second factor.

    Token-authenticated API requests are not sessions and pass (DRF authenticates them later).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (not request.user.is_authenticated or request.path.startswith(settings.STATIC_URL)
                or request.path == reverse("logout")):
            return self.get_response(request)
        gate = self._gate(request, selectors.membership_of(request.user))
        if gate is None:
            return self.get_response(request)
        pages, message = gate
        if request.path in pages:
            request.account_gated = True  # the header leaves out the pages that would only send the user back
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": f"{message} ({pages[0]})"}, status=403)
        if not getattr(request, "is_background", False):
            messages.info(request, message)
        target = pages[0]
        if pages[0] == reverse("two_factor_verify") and request.method == "GET":
            target += "?" + urlencode({"next": request.get_full_path()})
        return redirect(target)

    @staticmethod
    def _gate(request: HttpRequest, membership) -> tuple[list[str], str] | None:
        user = request.user
        # Runs on every request: a session confirmed with a code has a device, so only others ask the database.
        verified = user.is_verified()
        has_device = verified or selectors.two_factor_device(user=user) is not None
        # Any user, a site superuser without an organization included: the Django admin opens patient data too.
        if has_device and not verified:
            return ([reverse("two_factor_verify"), reverse("two_factor_recover")],
                    "Enter the code from your authenticator app to finish logging in.")
        if membership is None:
            return None
        if request.session.get(SIGNED_ON):
            # Logged in through the hospital's sign-on: its password and multi-factor policies apply, and the
            # kidneyweb password (temporary or not) was not used.
            return None
        if membership.password_change_required:
            return [reverse("password_change")], "You logged in with a temporary password. Choose your own to go on."
        if membership.organization.require_two_factor and not has_device:
            return ([reverse("account"), reverse("two_factor_setup"), reverse("two_factor_confirm")],
                    f"{membership.organization.name} requires two-factor authentication. Set up your authenticator app to go on.")
        return None
