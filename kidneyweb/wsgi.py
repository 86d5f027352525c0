"""WSGI entry point (gunicorn kidneyweb.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kidneyweb.settings")

application = get_wsgi_application()
