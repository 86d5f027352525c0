"""The REST API's views: clinical records (``records``, ``scans``), the organization's members (``members``) and its
result notifications (``notifications``)."""

from .members import MemberViewSet
from .notifications import NotificationViewSet
from .records import AccessLogView, AgreementView, PatientViewSet, WorklistView
from .scans import ScanViewSet

__all__ = ["AccessLogView", "AgreementView", "MemberViewSet", "NotificationViewSet", "PatientViewSet", "ScanViewSet", "WorklistView"]
