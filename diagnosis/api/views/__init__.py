"""The REST API's views: clinical records (``records``, ``scans``), the organization's members (``members``), its
result notifications (``notifications``), where AI results are stored in its archive (``archive``), where results go as HL7 v2 (``record_system``), a DICOMweb store for archives (``dicomweb``) and a model version's performance on its patients (``performance``)."""

from .archive import ArchiveViewSet
from .dicomweb import DicomStoreView, DicomStudyStoreView
from .exports import RecordExportViewSet
from .members import MemberViewSet
from .notifications import NotificationViewSet
from .performance import AboutModelView, PerformanceView
from .record_system import RecordSystemViewSet
from .records import AccessLogView, AgreementView, ErasureGiveUpArchiveView, ErasureListView, PatientViewSet, WorklistView
from .scans import ScanViewSet

__all__ = ["AboutModelView", "ArchiveViewSet", "AccessLogView", "AgreementView", "DicomStoreView", "DicomStudyStoreView", "ErasureGiveUpArchiveView", "ErasureListView", "MemberViewSet", "NotificationViewSet", "PatientViewSet", "PerformanceView", "RecordExportViewSet", "RecordSystemViewSet", "ScanViewSet", "WorklistView"]
