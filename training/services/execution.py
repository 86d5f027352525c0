"""Running one training run on the training worker: mlcore's pipeline with live progress, its log,
cancellation, the comparison on the locked test series and the registration of the new version.

The new version is registered inactive and only once everything else succeeded, so a failed or
cancelled run leaves the model registry and the active model exactly as they were.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from diagnosis import selectors as diagnosis_selectors
from diagnosis import services as diagnosis_services

from .. import ml, selectors
from ..models import TrainingRun
from .evaluations import locked_test_evaluation_save, locked_test_set_current, model_version_evaluate
from .runs import MAX_FAILURE_REASON, _finish, orphan_reason, training_run_fail

logger = logging.getLogger(__name__)

# The log kept with a run: its tail, when a run writes more than this.
MAX_LOG_CHARS = 200_000
# Loggers whose records go into the run's log.
CAPTURED_LOGGERS = ("mlcore", "training")


class RunCancelled(Exception):
    """An administrator asked the run to stop."""


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a broken log call must not break the run
            return
        with self.lock:
            self.lines.append(line)

    def text(self) -> str:
        with self.lock:
            text = "\n".join(self.lines)
        return text[-MAX_LOG_CHARS:]


class RunReporter:
    """Writes a run's progress, heartbeat and log to its row while it runs; answers "should I stop?"."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.capture = _LogCapture()
        self.history: list[dict[str, Any]] = []
        self.stage_name = ""
        self.model_path: Path | None = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._levels: dict[str, int] = {}

    def __enter__(self) -> RunReporter:
        for name in CAPTURED_LOGGERS:
            target = logging.getLogger(name)
            self._levels[name] = target.level
            if target.getEffectiveLevel() > logging.INFO:
                target.setLevel(logging.INFO)
            target.addHandler(self.capture)
        interval = settings.KIDNEYWEB_TRAINING_HEARTBEAT_SECONDS
        if interval > 0:
            self._thread = threading.Thread(target=self._beat, args=(interval,), name=f"run-{self.run_id}-heartbeat",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for name in CAPTURED_LOGGERS:
            target = logging.getLogger(name)
            target.removeHandler(self.capture)
            target.setLevel(self._levels[name])
        self.write()

    def _beat(self, interval: float) -> None:
        try:
            while not self._stop.wait(interval):
                try:
                    self.write()
                except Exception:  # the database may blink; the next beat tries again
                    logger.warning("Heartbeat of training run %s failed", self.run_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def write(self, **fields: Any) -> None:
        with self._write_lock:
            TrainingRun.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now(), log=self.capture.text(),
                                                               **fields)

    def stage(self, name: str) -> None:
        self.check_cancel()
        self.stage_name = name
        logger.info("Stage: %s", name)
        self.write(stage=name)

    def epoch(self, progress: Any) -> None:
        entry = {key: (round(value, 6) if isinstance(value, float) else value)
                 for key, value in progress.to_dict().items()}
        self.history.append(entry)
        recent = [h["seconds"] for h in self.history[-3:]]
        remaining = max(0, progress.epochs - progress.epoch)
        eta = round(sum(recent) / len(recent) * remaining) if remaining else 0
        metrics = {key: entry[key] for key in ("loss", "val_loss", "val_accuracy", "val_macro_f1")}
        self.write(epoch=progress.epoch, epochs=progress.epochs, history=list(self.history),
                   metrics={"epoch": metrics}, eta_seconds=eta)

    def cancel_requested(self) -> bool:
        state = TrainingRun.objects.filter(pk=self.run_id).values("cancel_requested", "is_current").first()
        # A run failed meanwhile (its worker was taken for dead) stops as well.
        return state is None or state["cancel_requested"] or not state["is_current"]

    def check_cancel(self) -> None:
        if self.cancel_requested():
            raise RunCancelled()


def _claim(run_id: int, worker_node: str, worker_pid: int | None) -> TrainingRun | None:
    """Mark the run running on this worker; None when there is nothing (more) to do."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            logger.warning("Training run %s does not exist; nothing to do.", run_id)
            return None
        if run.is_final:
            logger.info("Training run %s is already %s; nothing to do.", run_id, run.status)
            return None
        if run.status == TrainingRun.Status.RUNNING:
            # A second delivery of the message: the first either still runs (leave it) or died.
            reason = orphan_reason(run)
            if reason:
                _finish(run, TrainingRun.Status.FAILED, reason=reason)
            else:
                logger.info("Training run %s is running on %s; ignoring a second delivery.", run_id, run.worker_node)
            return None
        if run.cancel_requested:
            _finish(run, TrainingRun.Status.CANCELLED, reason="Cancelled before it started.")
            return None
        now = timezone.now()
        run.status = TrainingRun.Status.RUNNING
        run.started_at = run.heartbeat_at = now
        run.worker_node, run.worker_pid = worker_node[:255], worker_pid
        run.stage = "starting"
        run.save(update_fields=["status", "started_at", "heartbeat_at", "worker_node", "worker_pid", "stage"])
    return run


def describe_failure(exc: BaseException, stage: str) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    where = f" during {stage.replace('_', ' ')}" if stage else ""
    name = exc.__class__.__name__
    if isinstance(exc, SoftTimeLimitExceeded):
        reason = (f"The run took longer than the time limit ({settings.KIDNEYWEB_TRAINING_TIME_LIMIT_SECONDS} s) "
                  f"and was stopped{where}.")
    elif isinstance(exc, MemoryError) or name == "ResourceExhaustedError":
        reason = (f"The worker ran out of memory{where}. Try a smaller batch_size or image_size. ({name}: {exc})")
    elif isinstance(exc, ValidationError):
        reason = f"The data could not be prepared{where}: {' '.join(exc.messages)}"
    elif isinstance(exc, (ValueError, FileNotFoundError)):
        reason = f"The data could not be used{where}: {exc}"
    else:
        reason = f"The run failed{where} ({name}: {exc})."
    return reason[:MAX_FAILURE_REASON]


def _run_name(run: TrainingRun, params: Any) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    return f"kidney-{params.train.architecture.replace('_', '-')}-run{run.pk}-{stamp}"


def _prepare_data(run: TrainingRun, reporter: RunReporter, run_dir: Path, test_set: Any) -> tuple[Path, tuple[Path, ...]]:
    """The data folder and extra manifests for mlcore, after the data choice."""
    developer = ml.developer_data_dir()
    if run.data == TrainingRun.Data.DEVELOPER:
        return developer, ()
    reporter.stage("export_reviewed")
    export_dir = run_dir / "reviewed"
    manifest = diagnosis_services.reviewed_scans_export(organization=run.organization, out_dir=export_dir)
    kept = ml.drop_locked_test_images(export_dir, manifest, test_set.records)
    logger.info("Reviewed scans of %s for training: %d", run.organization, kept)
    if kept == 0:
        raise ValueError(f"{run.organization} has no reviewed scans to train on (outside the locked test series)")
    if run.data == TrainingRun.Data.REVIEWED:
        return export_dir, ()
    return developer, (manifest,)


def _remove_model_files(model_path: Path | None) -> None:
    if model_path is None:
        return
    for path in (model_path, model_path.with_suffix(".json")):
        path.unlink(missing_ok=True)


def run_work_dir(run_id: int) -> Path:
    """Scratch space of one run: exported scans, manifest, base and trained model, plots."""
    return Path(settings.KIDNEYWEB_TRAINING_DIR) / "runs" / str(run_id)


def _train(run: TrainingRun, reporter: RunReporter) -> TrainingRun:
    from mlcore.config import Paths

    params = ml.params_from_dict(run.params)
    run_dir = run_work_dir(run.pk)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    name = _run_name(run, params)
    model_path = Path(settings.KIDNEYWEB_MODELS_DIR) / f"{name}.keras"
    reporter.model_path = model_path
    logger.info("Training run %s: %s data, parameters %s", run.pk, run.data, run.params["train"])

    reporter.stage("locked_test_set")
    test_set = locked_test_set_current()
    TrainingRun.objects.filter(pk=run.pk).update(locked_test_set=test_set)
    data_dir, extras = _prepare_data(run, reporter, run_dir, test_set)
    paths = Paths(data_dir=data_dir, artifacts_dir=run_dir / "artifacts", model_out=model_path,
                  extra_manifests=extras)
    result = ml.run_pipeline(paths, params, name=name, on_stage=reporter.stage, on_epoch_end=reporter.epoch,
                             should_stop=reporter.cancel_requested)

    reporter.stage("compare")
    manifest_sha256, training_images = ml.manifest_identity(paths.manifest)
    card = ml.annotate_card(model_path, data={"selection": run.data, "manifest_sha256": manifest_sha256,
                                              "locked_test_set_sha256": test_set.sha256},
                            training={"kidneyweb_training_run": run.pk})
    started = time.monotonic()
    candidate = ml.load_classifier(model_path)
    probabilities = ml.classify_records(candidate, Path(test_set.data_dir), test_set.records)
    seconds = time.monotonic() - started
    active = diagnosis_selectors.model_version_active()
    if active is not None:
        try:
            model_version_evaluate(model_version=active, test_set=test_set)
        except Exception as exc:  # the comparison then says so; the new model is no worse for it
            logger.warning("The active version %s could not be evaluated: %s", active.name, exc)
    reporter.check_cancel()

    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.is_final or locked.cancel_requested:
            raise RunCancelled()
        version = diagnosis_services.model_version_register(path=model_path, name=name, activate=False)
        evaluation = locked_test_evaluation_save(model_version=version, test_set=test_set,
                                                 class_names=list(candidate.class_names),
                                                 probabilities=probabilities, seconds=seconds)
        locked.training_image_hashes = training_images
        locked.model_version = version
        locked.save(update_fields=["training_image_hashes", "model_version"])
        gate = selectors.promotion_gate(candidate=version, test_set=test_set)
        test_scores = result.test_scores
        locked.metrics = {
            "epoch": (locked.metrics or {}).get("epoch"),
            "test": {"accuracy": test_scores.accuracy, "macro_f1": test_scores.macro_f1,
                     "expected_calibration_error": test_scores.expected_calibration_error,
                     "recall": {k: v["recall"] for k, v in test_scores.per_class.items()}},
            "locked_test": {k: evaluation.scores[k] for k in
                            ("images", "accuracy", "macro_f1", "expected_calibration_error", "recall")},
        }
        locked.gate = gate
        locked.data_manifest_sha256 = manifest_sha256
        locked.mlflow_run_id = (card.get("training") or {}).get("mlflow_run_id") or ""
        locked.stage = "done"
        locked.save(update_fields=["metrics", "gate", "data_manifest_sha256", "mlflow_run_id", "stage"])
        _finish(locked, TrainingRun.Status.SUCCEEDED)
    logger.info("Training run %s succeeded: %s registered (inactive); gate %s", run.pk, version.name,
                "passed" if gate.get("passed") else "not passed")
    return locked


def training_run_execute(*, run_id: int, worker_node: str = "", worker_pid: int | None = None) -> TrainingRun | None:
    """The training task's body. Safe to deliver twice: a run that is running or over is left alone."""
    from mlcore.train import TrainingCancelled

    run = _claim(run_id, worker_node, worker_pid)
    if run is None:
        return TrainingRun.objects.filter(pk=run_id).first()
    reporter = RunReporter(run_id)
    with reporter:
        try:
            return _train(run, reporter)
        except (RunCancelled, TrainingCancelled):
            logger.info("Training run %s cancelled during %s", run_id, reporter.stage_name or "start")
            _remove_model_files(reporter.model_path)
            with transaction.atomic():
                locked = TrainingRun.objects.select_for_update().get(pk=run_id)
                if not locked.is_final:
                    _finish(locked, TrainingRun.Status.CANCELLED,
                            reason=f"Cancelled by an administrator during {reporter.stage_name or 'start'}.")
        except BaseException as exc:
            logger.exception("Training run %s failed during %s", run_id, reporter.stage_name)
            _remove_model_files(reporter.model_path)
            training_run_fail(run_id=run_id, reason=describe_failure(exc, reporter.stage_name))
            if not isinstance(exc, Exception):
                raise
        finally:
            # What outlives the run is elsewhere: the model and card in the models folder, the log and
            # scores in the database, plots and curves in MLflow. Copies of scans must not pile up.
            shutil.rmtree(run_work_dir(run_id), ignore_errors=True)
    return TrainingRun.objects.filter(pk=run_id).first()
