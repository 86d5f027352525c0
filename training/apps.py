from django.apps import AppConfig


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"
    verbose_name = "Retraining and promotion"

    def ready(self) -> None:
        # Celery signal receivers: a restarted worker fails the runs its previous life left behind,
        # and a worker whose pool child was killed fails that child's run.
        from . import signals  # noqa: F401
