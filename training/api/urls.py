from rest_framework.routers import SimpleRouter

from .views import ModelPromotionViewSet, ModelVersionViewSet, TrainingRunViewSet

app_name = "training-api"

router = SimpleRouter()
router.register("training-runs", TrainingRunViewSet, basename="training-run")
router.register("model-versions", ModelVersionViewSet, basename="model-version")
router.register("model-promotions", ModelPromotionViewSet, basename="model-promotion")

urlpatterns = router.urls
