"""A model version's card, for every member, and its performance on the organization's own reviewed slices, for a
hospital's quality system."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ... import selectors
from ...models import ModelVersion
from ..permissions import HasMembership, IsOrganizationAdministrator
from ..serializers.performance import (ModelCardSerializer, PerformanceFilterSerializer, PerformanceInUseSerializer,
                                      PerformanceQuerySerializer)


def _version_asked(filters: PerformanceFilterSerializer) -> ModelVersion | None:
    """The version ``model_version`` names; None without one; 404 for an id no version has."""
    wanted = filters.validated_data.get("model_version")
    if wanted is None:
        return None
    version = selectors.model_version_get(pk=wanted)
    if version is None:
        raise NotFound("There is no model version with that id.")
    return version


@extend_schema(
    summary="A model version's performance on your patients, next to its card",
    description=(
        "For the caller's organization and one model version (the active one unless model_version names another): "
        "its results by outcome, and on the reviewed slices (the current review of each, taken as the truth) the "
        "share whose AI label was kept and, per class, the share found (recall) and the share of its labels kept "
        "(precision), each with a 95% Wilson interval, the patients its slices came from and the value on the version's "
        "card. A measure is below the card when even its interval's upper end is under the card's value. Then "
        "the newest weeks (12, or ?weeks=N, or ?weeks=all since its first result), and (inputs) the out-of-scope share of the newest 4 against the share the card expects "
        "of slices like the training data: above it when even its interval's lower end is over it, a sign that "
        "what is uploaded has changed. Administrators only."
    ),
    parameters=[PerformanceQuerySerializer],
    responses={200: PerformanceInUseSerializer},
)
class PerformanceView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, HasMembership, IsOrganizationAdministrator]
    serializer_class = PerformanceInUseSerializer

    def get(self, request: Request) -> Response:
        filters = PerformanceQuerySerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        organization = selectors.organization_of(request.user)
        version = _version_asked(filters) or selectors.model_version_watched(organization=organization)
        if version is None:
            raise NotFound("No model version is active, and none has diagnosed your organization's scans.")
        performance = selectors.model_performance_in_use(organization=organization, model_version=version,
                                                         weeks_shown=filters.validated_data["weeks"])
        return Response(self.get_serializer(performance, context={**self.get_serializer_context(),
                                                                  "organization": organization}).data)


@extend_schema(
    summary="About the model: a version's card",
    description=(
        "What a clinician or a hospital system should know before leaning on the model: the active version's card "
        "(or model_version's), with its intended use, its scores on test patients none of its training saw (95% "
        "intervals), per class the share found and the share of its labels right, axial against coronal slices, and "
        "its limitations stated from those figures. Every member."
    ),
    parameters=[PerformanceFilterSerializer],
    responses={200: ModelCardSerializer},
)
class AboutModelView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, HasMembership]
    serializer_class = ModelCardSerializer

    def get(self, request: Request) -> Response:
        filters = PerformanceFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        version = _version_asked(filters) or selectors.model_version_active()
        if version is None:
            raise NotFound("No model version is active.")
        return Response(self.get_serializer(selectors.model_card_view(model_version=version)).data)
