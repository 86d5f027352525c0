"""The REST API's views: clinical records (``records``, ``scans``), the organization's members (``members``), its
result notifications (``notifications``), a DICOMweb store for archives (``dicomweb``) and a model version's performance on its patients (``performance``)."""

from .dicomweb import DicomStoreView, DicomStudyStoreView
from .members import MemberViewSet
from .notifications import NotificationViewSet
from .performance import AboutModelView, PerformanceView
from .records import AccessLogView, AgreementView, PatientViewSet, WorklistView
from .scans import ScanViewSet

__all__ = ["AboutModelView", "AccessLogView", "AgreementView", "DicomStoreView", "DicomStudyStoreView", "MemberViewSet", "NotificationViewSet", "PatientViewSet", "PerformanceView", "ScanViewSet", "WorklistView"]
