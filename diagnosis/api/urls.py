from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import (
    AboutModelView, AccessLogView, ArchiveViewSet, ErasureGiveUpArchiveView, ErasureListView, AgreementView, DicomStoreView, DicomStudyStoreView, MemberViewSet, NotificationViewSet, PatientViewSet, PerformanceView,
    RecordExportViewSet, RecordSystemViewSet,
    ScanViewSet, WorklistView,
)

app_name = "api"

router = SimpleRouter()
router.register("patients", PatientViewSet, basename="patient")
router.register("scans", ScanViewSet, basename="scan")
router.register("members", MemberViewSet, basename="member")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("archive", ArchiveViewSet, basename="archive")
router.register("record-exports", RecordExportViewSet, basename="record-export")
router.register("record-system", RecordSystemViewSet, basename="record-system")

urlpatterns = [
    path("worklist/", WorklistView.as_view(), name="worklist"),
    path("agreement/", AgreementView.as_view(), name="agreement"),
    path("performance/", PerformanceView.as_view(), name="performance"),
    path("model/", AboutModelView.as_view(), name="model-card"),
    path("accesses/", AccessLogView.as_view(), name="access-log"),
    path("erasures/", ErasureListView.as_view(), name="erasure-list"),
    path("erasures/<int:pk>/give-up-archive/", ErasureGiveUpArchiveView.as_view(), name="erasure-give-up-archive"),
    # DICOMweb clients are given a base address and POST to {base}/studies, without a trailing slash.
    path("dicomweb/studies", DicomStoreView.as_view(), name="dicomweb-studies"),
    path("dicomweb/studies/<str:study_uid>", DicomStudyStoreView.as_view(), name="dicomweb-study"),
    *router.urls,
]

