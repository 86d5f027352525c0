"""Response headers the whole site shares."""

from __future__ import annotations

from typing import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """Send the Content-Security-Policy: pages show patient data, so a script that slipped into a name or
    comment must not run, and nothing may be loaded from or sent to another site.

    The pages run no inline scripts (their JavaScript is in static/js), which is what lets the policy
    forbid them; a view that sets its own header keeps it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.KIDNEYWEB_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
