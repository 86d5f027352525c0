"""What the whole site shares: response headers, and the end of an idle login."""

from __future__ import annotations

import time
from typing import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
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


class IdleLogoutMiddleware:
    """End a login after ``KIDNEYWEB_IDLE_SECONDS`` without the user doing anything: a ward workstation
    left logged in would show patient records to whoever passes by.

    Requests that pages make by themselves (polling for results, header ``X-Background-Request: 1``,
    static/js/session.js) are not activity: an open worklist must not keep a login alive for ever.
    """

    KEY = "kidneyweb_last_activity"
    BACKGROUND_HEADER = "X-Background-Request"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.KIDNEYWEB_IDLE_SECONDS
        # A poll that ended up on the login page must leave the messages for the page the user opens next.
        request.is_background = request.headers.get(self.BACKGROUND_HEADER) == "1"
        # request.user comes from the session here; token-authenticated API requests are not sessions.
        if limit and request.user.is_authenticated:
            now = time.time()
            last = request.session.get(self.KEY)
            if last is not None and now - last > limit:
                logout(request)
                minutes = max(1, round(limit / 60))
                messages.info(request, f"You were logged out after {minutes} minute{'s' * (minutes != 1)} "
                                       "without activity, so that no one else sees patient data on this screen.")
            elif not request.is_background and (last is None or now - last > min(60, limit / 10)):
                # Written at most once a minute: every write is a session save.
                request.session[self.KEY] = now
        return self.get_response(request)
