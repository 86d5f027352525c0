from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import AccessLogView, AgreementView, PatientViewSet, ScanViewSet, WorklistView

app_name = "api"

router = SimpleRouter()
router.register("patients", PatientViewSet, basename="patient")
router.register("scans", ScanViewSet, basename="scan")

urlpatterns = [
    path("worklist/", WorklistView.as_view(), name="worklist"),
    path("agreement/", AgreementView.as_view(), name="agreement"),
    path("accesses/", AccessLogView.as_view(), name="access-log"),
    *router.urls,
]

