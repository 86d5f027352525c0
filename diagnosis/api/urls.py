from rest_framework.routers import SimpleRouter

from .views import PatientViewSet, ScanViewSet

app_name = "api"

router = SimpleRouter()
router.register("patients", PatientViewSet, basename="patient")
router.register("scans", ScanViewSet, basename="scan")

urlpatterns = router.urls

