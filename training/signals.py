"""Celery signals that keep training runs honest when a worker dies under them."""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import TimeLimitExceeded, WorkerLostError
from celery.signals import task_failure, worker_ready

logger = logging.getLogger(__name__)


@worker_ready.connect
def fail_runs_of_the_previous_worker(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts again under the same name cannot still be running its old runs."""
    from .services import training_runs_fail_orphaned

    node = getattr(sender, "hostname", None)
    try:
        failed = training_runs_fail_orphaned(restarted_node=node)
    except Exception:  # the worker must start even if the database is not there yet
        logger.exception("Could not check for training runs left behind by a stopped worker")
        return
    if failed:
        logger.warning("Marked training runs %s failed: their worker stopped during the run", failed)


@task_failure.connect
def fail_the_run_of_a_lost_task(sender: Any = None, exception: BaseException | None = None,
                                args: Any = None, **kwargs: Any) -> None:
    """Runs in the worker's main process when the pool child running a training task died."""
    if getattr(sender, "name", "") != "training.tasks.train_model" or not args:
        return
    from .services import training_run_fail

    if isinstance(exception, WorkerLostError):
        reason = (f"The worker process running it stopped during the run ({exception}); most often it was killed "
                  "for using too much memory: try a smaller batch_size or image_size.")
    elif isinstance(exception, TimeLimitExceeded):
        reason = f"The run passed the hard time limit and its worker process was stopped ({exception})."
    else:
        reason = f"The training task failed ({exception.__class__.__name__}: {exception})."
    training_run_fail(run_id=int(args[0]), reason=reason)
