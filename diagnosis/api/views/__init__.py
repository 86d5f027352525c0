"""The REST API's views: clinical records (``records``, ``scans``), the organization's members (``members``), its
result notifications (``notifications``) and a model version's performance on its patients (``performance``)."""

from .members import MemberViewSet
from .notifications import NotificationViewSet
from .performance import AboutModelView, PerformanceView
from .records import AccessLogView, AgreementView, PatientViewSet, WorklistView
from .scans import ScanViewSet

__all__ = ["AboutModelView", "AccessLogView", "AgreementView", "MemberViewSet", "NotificationViewSet", "PatientViewSet", "PerformanceView", "ScanViewSet", "WorklistView"]
