# kidneyweb image: one image for the web (gunicorn) and the worker (Celery) services.
# Build: docker build -t kidneyweb .      Run the whole stack: see docker-compose.yml and README.md.

# --- build stage: dependencies into a self-contained virtualenv ---------------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
COPY requirements.txt /opt/requirements.txt
# Runtime pins only: test tools stay out of the image.
RUN /opt/venv/bin/pip install -r /opt/requirements.txt

# --- runtime stage -------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_DEBUG=0 \
    KIDNEYWEB_VAR_DIR=/app/var \
    KIDNEYWEB_MEDIA_ROOT=/app/media \
    TF_CPP_MIN_LOG_LEVEL=2

# A writable home: gunicorn keeps its control socket there, Keras and matplotlib their config.
RUN groupadd --system --gid 10001 kidneyweb \
 && useradd --system --uid 10001 --gid kidneyweb --create-home --home-dir /home/kidneyweb \
      --shell /usr/sbin/nologin kidneyweb

# DejaVu fonts: the PDF reports print patient names in them (the slim image's fallback font has no
# glyphs for letters such as ő, ń or ř); Droid Sans Fallback for Chinese, Japanese and Korean ones;
# Noto Sans for Bengali, Devanagari, Tamil, Thai and the other scripts the reports shape.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core fonts-droid-fallback fonts-noto-core \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Code and the shipped model stay owned by root, so the service user cannot change them.
COPY . /app

# The secret only lets settings load while static files are collected; it is not kept in the image.
# Settings create var/ and media/ on import: start the image with them empty and writable by the service;
# mlruns/ is where MLflow records training runs that a worker executes; var/models/ (a shared volume in
# docker-compose.yml) holds the models they produce.
RUN SECRET_KEY=build-time-only-not-secret DJANGO_DEBUG=0 python manage.py collectstatic --noinput --verbosity 0 \
 && rm -rf /app/var /app/media \
 && mkdir -p /app/var/models /app/var/training /app/media /app/mlruns \
 && chown kidneyweb:kidneyweb /app/var /app/var/models /app/var/training /app/media /app/mlruns \
 && chmod 0755 /app/scripts/docker-entrypoint.sh /app/scripts/healthcheck.py

USER kidneyweb
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["python", "/app/scripts/healthcheck.py"]

ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["gunicorn", "kidneyweb.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--timeout", "120", "--config", "gunicorn.conf.py"]
