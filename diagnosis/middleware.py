"""A member holding a temporary password reaches only the password page until they choose their own."""

from __future__ import annotations

from typing import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from . import selectors


class PasswordChangeRequiredMiddleware:
    """An administrator handed over the temporary password, so others may have seen it: it opens nothing
    but the page that replaces it (and logging out)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        membership = selectors.membership_of(request.user)
        if membership is None or not membership.password_change_required:
            return self.get_response(request)
        page = reverse("password_change")
        if request.path in (page, reverse("logout")) or request.path.startswith(settings.STATIC_URL):
            return self.get_response(request)
        if request.path.startswith("/api/"):
            # Only a browser session gets here: token requests authenticate later, in the API views.
            return JsonResponse({"detail": f"Choose your own password first, at {page}."}, status=403)
        messages.info(request, "You logged in with a temporary password. Choose your own to go on.")
        return redirect(page)
