from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from diagnosis import selectors as diagnosis_selectors
from diagnosis.api.permissions import HasMembership
from diagnosis.api.renderers import PlainTextRenderer
from diagnosis.models import ModelVersion

from .. import selectors, services
from ..models import TrainingRun
from .permissions import IsOrganizationAdmin, ReadOrOrganizationAdmin

ADMINS = [IsAuthenticated, HasMembership, IsOrganizationAdmin]
MEMBERS_READ_ADMINS_WRITE = [IsAuthenticated, HasMembership, ReadOrOrganizationAdmin]
from .serializers import (
    ModelPromotionSerializer,
    ModelVersionSerializer,
    PromoteSerializer,
    TrainingRunCreateSerializer,
    TrainingRunSerializer,
)


def _conflict(detail: str, **extra) -> Response:
    return Response({"detail": detail, **extra}, status=status.HTTP_409_CONFLICT)


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TrainingRunSerializer
    permission_classes = ADMINS

    def get_queryset(self) -> QuerySet[TrainingRun]:
        return selectors.training_run_list(organization=diagnosis_selectors.organization_of(self.request.user))

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        # A run whose worker died shows as failed, not as running forever.
        services.training_runs_fail_orphaned()
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        request=TrainingRunCreateSerializer,
        responses={202: TrainingRunSerializer, 409: OpenApiResponse(description="A run is already queued or running.")},
        description="Queue a training run on the training worker. Poll the run for `status`, `stage` and `epoch`.",
    )
    def create(self, request: Request) -> Response:
        serializer = TrainingRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            run = services.training_run_start(
                requested_by=request.user,
                data=serializer.validated_data["data"],
                preset=serializer.validated_data["preset"],
                overrides=serializer.validated_data["params"],
                organization=diagnosis_selectors.organization_of(request.user),
            )
        except services.TrainingRunConflict as exc:
            current = exc.current.pk if exc.current and exc.visible else None
            return _conflict(exc.message, current_run=current)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: TrainingRunSerializer, 409: OpenApiResponse(description="Already over.")},
                   description="Stop the run: a queued run ends at once, a running one at its next epoch end.")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        try:
            run = services.training_run_cancel(run=run)
        except services.TrainingRunFinished as exc:
            return _conflict(str(exc))
        run = selectors.training_run_get(pk=run.pk, organization=run.organization)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "text/plain"): str}, description="The run's log (mlcore's and the run's messages).")
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, PlainTextRenderer])
    def log(self, request: Request, pk: str | None = None) -> HttpResponse:
        return HttpResponse(self.get_object().log, content_type="text/plain; charset=utf-8")


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ModelVersionSerializer
    permission_classes = MEMBERS_READ_ADMINS_WRITE

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return selectors.model_version_list()

    def list(self, request: Request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        versions = selectors.attach_locked_test_evaluations(list(page))
        return self.get_paginated_response(self.get_serializer(versions, many=True).data)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        version = selectors.attach_locked_test_evaluations([self.get_object()])[0]
        data = self.get_serializer(version).data
        data["gate"] = selectors.promotion_gate(candidate=version)
        return Response(data)

    @extend_schema(
        request=PromoteSerializer,
        responses={200: ModelVersionSerializer, 409: OpenApiResponse(description="The gate refused; its verdict.")},
        description="Make this version the active one if the promotion gate lets it through, or with a written "
        "`reason` that overrides the gate. Workers use it for the next upload without a restart.",
    )
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str | None = None) -> Response:
        return self._change(request, services.model_version_promote)

    @extend_schema(
        request=PromoteSerializer,
        responses={200: ModelVersionSerializer, 400: OpenApiResponse(description="The version never served.")},
        description="Go back to a version that was active before; the gate does not apply, the audit trail records it.",
    )
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        return self._change(request, services.model_version_rollback)

    def _change(self, request: Request, change) -> Response:
        version = self.get_object()
        serializer = PromoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            promotion = change(model_version=version, user=request.user, reason=serializer.validated_data["reason"])
        except services.PromotionRefused as exc:
            return _conflict(exc.message, gate=exc.verdict)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None
        version.refresh_from_db()
        data = self.get_serializer(selectors.attach_locked_test_evaluations([version])[0]).data
        data["promotion"] = ModelPromotionSerializer(promotion).data if promotion else None
        if promotion is None:
            data["detail"] = f"{version.name} is already the active version."
        return Response(data, status=status.HTTP_200_OK)

    @extend_schema(request=None,
                   responses={202: None, 503: OpenApiResponse(description="The task broker did not answer.")},
                   description="Queue this version's evaluation on the locked test series (for the gate).")
    @action(detail=True, methods=["post"], permission_classes=ADMINS)
    def evaluate(self, request: Request, pk: str | None = None) -> Response:
        version = self.get_object()
        try:
            services.model_version_evaluation_request(model_version=version)
        except services.EvaluationNotQueued as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"detail": f"The evaluation of {version.name} is queued on the training worker."},
                        status=status.HTTP_202_ACCEPTED)


class ModelPromotionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The audit trail: every promotion and rollback, newest first."""

    serializer_class = ModelPromotionSerializer
    permission_classes = ADMINS

    def get_queryset(self):
        return selectors.promotion_list()
