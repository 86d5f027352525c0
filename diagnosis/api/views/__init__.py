"""The REST API's views: clinical records (``records``) and the organization's members (``members``)."""

from .members import MemberViewSet
from .records import AccessLogView, AgreementView, PatientViewSet, ScanViewSet, WorklistView

__all__ = ["AccessLogView", "AgreementView", "MemberViewSet", "PatientViewSet", "ScanViewSet", "WorklistView"]
