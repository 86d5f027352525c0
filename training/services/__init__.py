"""Writes of the training app. One module per area; everything is re-exported here."""

from .evaluations import (
    DeveloperDataMissing,
    EvaluationNotQueued,
    locked_test_evaluation_save,
    locked_test_set_current,
    model_version_evaluate,
    model_version_evaluation_fail,
    model_version_evaluation_request,
)
from .execution import RunReporter, run_work_dir, training_run_execute
from .promotions import (
    PromotionRefused,
    model_version_admin_activate,
    model_version_promote,
    model_version_rollback,
)
from .runs import (
    TrainingRunConflict,
    TrainingRunFinished,
    training_run_cancel,
    training_run_fail,
    training_run_start,
    training_runs_fail_orphaned,
)

__all__ = [
    "DeveloperDataMissing",
    "EvaluationNotQueued",
    "PromotionRefused",
    "RunReporter",
    "TrainingRunConflict",
    "TrainingRunFinished",
    "locked_test_evaluation_save",
    "locked_test_set_current",
    "model_version_admin_activate",
    "model_version_evaluate",
    "model_version_evaluation_fail",
    "model_version_evaluation_request",
    "model_version_promote",
    "model_version_rollback",
    "run_work_dir",
    "training_run_cancel",
    "training_run_execute",
    "training_run_fail",
    "training_run_start",
    "training_runs_fail_orphaned",
]
