from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

from .. import selectors

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class IsOrganizationAdmin(BasePermission):
    """Training and promotion change the model every clinician relies on: administrators only."""

    message = "Only administrators can train, evaluate, promote or roll back models."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return selectors.is_training_admin(request.user)


class ReadOrOrganizationAdmin(IsOrganizationAdmin):
    """Any member may see which model versions exist and which is active; changing them is for administrators."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().has_permission(request, view)
