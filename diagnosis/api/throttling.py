"""A request rate per API token (or logged-in user), read from the settings on each request so that
KIDNEYWEB_API_RATE can be changed per deployment and per test."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class ApiRateThrottle(UserRateThrottle):
    scope = "api"

    def get_rate(self) -> str | None:
        return settings.KIDNEYWEB_API_RATE or None  # empty: no limit
