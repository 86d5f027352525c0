"""KIDNEYWEB_CONFIDENCE_THRESHOLD, read in a fresh process as a server would start."""

import pytest

from .subprocess_env import clean_env, run_python

READ = "import django; django.setup(); from django.conf import settings; print(settings.KIDNEYWEB_CONFIDENCE_THRESHOLD)"


def test_the_default_threshold_is_70_percent(tmp_path):
    result = run_python(READ, clean_env(tmp_path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0.7"


def test_the_threshold_comes_from_the_environment(tmp_path):
    result = run_python(READ, clean_env(tmp_path, KIDNEYWEB_CONFIDENCE_THRESHOLD="0.85"))

    assert result.stdout.strip().splitlines()[-1] == "0.85"


@pytest.mark.parametrize(("value", "message"), [("high", "is not a number"), ("70", "at most 1"), ("0", "above 0")])
def test_a_threshold_that_is_not_a_probability_stops_the_start(tmp_path, value, message):
    result = run_python(READ, clean_env(tmp_path, KIDNEYWEB_CONFIDENCE_THRESHOLD=value))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
