"""Experiment tracking: MLflow when available, a no-op otherwise.

Runs go to ``./mlruns`` (a SQLite store with artifacts beside it) unless
``MLFLOW_TRACKING_URI`` names another server or store.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

log = logging.getLogger(__name__)
EXPERIMENT = "kidneyweb"


class NullTracker:
    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: Path, folder: str | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class MLflowTracker(NullTracker):
    def __init__(self, mlflow_module, run) -> None:
        self._mlflow = mlflow_module
        self.run_id = run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._mlflow.log_params({k: str(v)[:500] for k, v in _flatten(params).items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {k.replace(" ", "_"): float(v) for k, v in metrics.items() if v is not None}
        self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=folder)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._mlflow.set_tags(dict(tags))


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    Path("mlruns").mkdir(exist_ok=True)
    return "sqlite:///mlruns/mlflow.db"


@contextmanager
def tracked_run(run_name: str, run_id: str | None = None, enabled: bool = True) -> Iterator[NullTracker]:
    """Start (or resume, given ``run_id``) an MLflow run; yields a no-op tracker when disabled."""
    if not enabled or os.environ.get("MLCORE_TRACKING", "1") == "0":
        yield NullTracker()
        return
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = None if "://" in uri and not uri.startswith("sqlite:") else str(Path("mlruns/artifacts").resolve().as_uri())
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name) as run:
        yield MLflowTracker(mlflow, run)
