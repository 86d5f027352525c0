"""The API's OpenAPI schema and its interactive documentation (Swagger UI): for signed-in users, unless
KIDNEYWEB_API_DOCS_PUBLIC publishes them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request


def _public() -> bool:
    # Read on each request rather than when the URLs load, so the setting is what the answer follows.
    return bool(settings.KIDNEYWEB_API_DOCS_PUBLIC)


class SchemaView(SpectacularAPIView):
    """The schema: 401 without a token or a web login, so an integrator fetches it with the API's token."""

    def get_permissions(self) -> list[BasePermission]:
        return [AllowAny()] if _public() else [IsAuthenticated()]


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI: a browser that is not signed in is sent to the login page and back."""

    @extend_schema(exclude=True)  # as on the view it extends: the page is no API operation
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _public() and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return super().get(request, *args, **kwargs)
