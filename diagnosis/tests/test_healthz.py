import json

import pytest

from kidneyweb.celery import app as celery_app

from .subprocess_env import clean_env, run_python


def test_healthz_answers_200_without_login_when_database_and_broker_answer(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok", "inference_worker": "not seen yet"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.fixture
def unreachable_broker():
    # A real connection attempt to a port where nothing listens.
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    yield
    celery_app.conf.broker_url = saved


def test_healthz_answers_503_naming_the_broker_when_it_does_not_answer(client, db, unreachable_broker):
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("error")


def test_healthz_answers_503_naming_the_database_when_it_does_not_answer(tmp_path):
    code = (
        "import django, json; django.setup(); "
        "from django.test.utils import setup_test_environment; setup_test_environment(); "
        "from django.test import Client; r = Client().get('/healthz'); "
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = clean_env(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:1/nothing")

    result = run_python(code, env)

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["database"].startswith("error") and answer["body"]["broker"] == "ok"


def test_healthz_says_when_the_inference_worker_last_ran_its_sweep(client, db, inference_queue):
    from datetime import timedelta

    from django.utils import timezone

    from diagnosis.models import WorkerHeartbeat
    from diagnosis.tasks import resend_lost_predictions

    resend_lost_predictions()  # what beat sends the inference worker every two minutes
    assert client.get("/healthz").json()["inference_worker"] == "ok"

    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(minutes=30))
    response = client.get("/healthz")
    assert response.status_code == 200  # reported, not judged: the web server itself is ready
    assert response.json()["inference_worker"].startswith("not seen for 18")
