"""The Celery application. Start a worker with: celery -A kidneyweb worker -Q inference"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kidneyweb.settings")

app = Celery("kidneyweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
