"""The pipeline stages: ingest → prepare_base_model → train → evaluate (→ publish).

Each stage reads and writes files named by ``config.yaml`` so ``dvc repro`` can run them
one by one and skip those whose inputs did not change; ``python main.py`` and the web
workers call the same functions in order.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from mlcore.card import ModelCard, card_path_for, file_sha256, read_card, write_card
from mlcore.config import Params, Paths
from mlcore.data import IngestReport, ingest, read_manifest, write_manifest
from mlcore.evaluate import (Scores, by_confidence, by_series, by_view, save_confusion_matrix, save_training_curves,
                             score, series_bootstrap)
from mlcore.tracking import NullTracker, tracked_run
from mlcore.train import EpochProgress, FitResult, dataset, fit

log = logging.getLogger(__name__)
STAGES: tuple[str, ...] = ("ingest", "prepare_base_model", "train", "evaluate")


@dataclass(frozen=True)
class PipelineResult:
    model_path: Path
    card: ModelCard
    test_scores: Scores
    fit: FitResult | None = None


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def _class_names(paths: Paths) -> tuple[str, ...]:
    return tuple(sorted({r.label for r in read_manifest(paths.manifest)}))


def stage_ingest(paths: Paths, params: Params) -> IngestReport:
    records, report = ingest(paths.data_dir, params.train.split, workdir=paths.artifacts_dir / "ingest",
                             extra_manifests=paths.extra_manifests)
    for split in ("train", "val", "test"):
        if not report.images_per_split.get(split):
            raise ValueError(f"the {split} split is empty: {paths.data_dir} has too few series")
    write_manifest(records, paths.manifest)
    _write_json(paths.ingest_report, asdict(report))
    log.info("ingest: %d images, %s per split, %d refused, %d duplicates, %d cross-class duplicates", report.images,
             report.images_per_split, len(report.refused), report.exact_duplicates, report.cross_class_duplicates)
    return report


def stage_prepare_base_model(paths: Paths, params: Params) -> Path:
    from mlcore.model import model_for

    config = params.train
    model = model_for(config, class_names=_class_names(paths), seed=config.seed)
    paths.base_model.parent.mkdir(parents=True, exist_ok=True)
    model.save(paths.base_model)
    log.info("base model %s: %d parameters", config.architecture, model.count_params())
    return paths.base_model


def stage_train(paths: Paths, params: Params, *, tracker: NullTracker | None = None,
                on_epoch_end: Callable[[EpochProgress], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> FitResult:
    import keras

    import mlcore.model  # noqa: F401  registers custom layers

    tracker = tracker or NullTracker()
    records = read_manifest(paths.manifest)
    base = keras.saving.load_model(paths.base_model, compile=False)
    tracker.log_params(params.to_dict())

    def progress(epoch: EpochProgress) -> None:
        metrics = {"loss": epoch.loss, "val_loss": epoch.val_loss, "val_accuracy": epoch.val_accuracy,
                   "val_macro_f1": epoch.val_macro_f1}
        tracker.log_metrics({k: v for k, v in metrics.items() if v is not None}, step=epoch.epoch)
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    result = fit(base_model=base, records=records, class_names=_class_names(paths), config=params.train,
                 out_of_scope_quantile=params.evaluate.out_of_scope_quantile, on_epoch_end=progress,
                 should_stop=should_stop)
    paths.trained_model.parent.mkdir(parents=True, exist_ok=True)
    result.model.save(paths.trained_model)
    _write_json(paths.history, {
        "history": [h.to_dict() for h in result.history], "best_epoch": result.best_epoch,
        "best_epochs": list(result.best_epochs), "refit": result.refit,
        "temperature": result.temperature, "class_offsets": list(result.class_offsets),
        "out_of_scope_threshold": result.out_of_scope_threshold,
        "seconds": round(result.seconds, 1), "mlflow_run_id": tracker.run_id,
    })
    tracker.log_metrics({"temperature": result.temperature, "best_epoch": result.best_epoch})
    return result


def _flagged(records: list, distances: np.ndarray, threshold: float | None) -> list[bool]:
    """Which slices the inference path would flag out of scope."""
    from mlcore.inference import out_of_scope_reason, slice_image

    return [bool(out_of_scope_reason(slice_image(record.path), float(distance), threshold))
            for record, distance in zip(records, distances)]


def stage_evaluate(paths: Paths, params: Params, *, tracker: NullTracker | None = None,
                   name: str | None = None) -> tuple[Scores, ModelCard]:
    """Score the trained model on the test split and write scores, plots and the model card."""
    import keras

    import mlcore.model  # noqa: F401

    tracker = tracker or NullTracker()
    records = read_manifest(paths.manifest)
    class_names = _class_names(paths)
    trained = json.loads(paths.history.read_text())
    report = json.loads(paths.ingest_report.read_text())
    model = keras.saving.load_model(paths.trained_model, compile=False)
    test_ds, test_labels = dataset([r for r in records if r.split == "test"], class_names, params.train.batch_size)
    probabilities, distances = (np.asarray(a) for a in model.predict(test_ds, verbose=0))
    test_records = [r for r in records if r.split == "test"]
    scores = score(test_labels, probabilities, class_names)
    intervals = series_bootstrap(test_labels, probabilities, [r.series for r in test_records], class_names)
    patients = by_series(test_labels, probabilities, [r.series for r in test_records], class_names)
    views = by_view(test_labels, probabilities, [r.view for r in test_records], class_names)
    confidence = by_confidence(test_labels, probabilities, class_names, params.evaluate.confidence_threshold,
                               [r.series for r in test_records],
                               out_of_scope=_flagged(test_records, distances[:, 0], trained["out_of_scope_threshold"]))

    _write_json(paths.scores, {"accuracy": scores.accuracy, "macro_f1": scores.macro_f1,
                               "expected_calibration_error": scores.expected_calibration_error,
                               **{f"recall_{k}": v["recall"] for k, v in scores.per_class.items()},
                               **{f"roc_auc_{k}": v for k, v in scores.roc_auc.items()}})
    _write_json(paths.scores.with_name("report.json"), {**scores.to_dict(), "intervals_95": intervals,
                                                         "by_view": views})
    paths.plots_dir.mkdir(parents=True, exist_ok=True)
    save_confusion_matrix(scores.confusion_matrix, class_names, paths.plots_dir / "confusion_matrix.png")
    save_training_curves(trained["history"], paths.plots_dir / "training_curves.png")

    card = ModelCard(
        name=name or paths.model_out.stem,
        architecture=params.train.architecture,
        classes=class_names,
        input_size=params.train.image_size,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        data={
            "source": paths.data_dir.name,
            "split": ("by series: consecutive ids of a class whose consecutive slices look alike; no series on two sides"
                      + ("; the axial and the coronal series of each class split apart"
                         if params.train.split.stratify_by_view else "")),
            **{k: v for k, v in report.items() if k != "refused"},
            "refused": len(report["refused"]),
        },
        metrics={"test_series_split": {**scores.to_dict(), "series": len({r.series for r in test_records}),
                                       "intervals_95": {"method": "bootstrap over series within each class, "
                                                                  "2000 rounds", **intervals},
                                       "by_series": patients, "by_view": views, "by_confidence": confidence},
                 "best_epoch": trained["best_epoch"],
                 "best_epochs": trained.get("best_epochs", [trained["best_epoch"]]),
                 **trained.get("carried_metrics", {})},
        training={"params": params.to_dict(), "history": trained["history"], "seconds": trained["seconds"],
                  **({"recalibrated_from": trained["recalibrated_from"]} if "recalibrated_from" in trained else {}),
                  "platform": f"{platform.machine()} CPU, TensorFlow {_tf_version()}, Keras {keras.__version__}",
                  "mlflow_run_id": trained.get("mlflow_run_id")},
        calibration={"method": ("per-class offsets to the log-probabilities maximising validation macro-F1, "
                                "then temperature scaling, both fitted on the validation split"
                                if trained.get("class_offsets") else
                                "temperature scaling fitted on the validation split")
                               + ("; fitted to the networks trained on the training split alone, which chose the "
                                  "epochs of the shipped ones, refitted on training and validation slices together"
                                  if trained.get("refit") else ""),
                     "temperature": trained["temperature"],
                     "class_offsets": dict(zip(class_names, trained.get("class_offsets") or [0.0] * len(class_names))),
                     "confidence_threshold": params.evaluate.confidence_threshold},
        out_of_scope={"method": "input checks (colour, blank, noise) and Mahalanobis distance of pooled features "
                                "to the nearest training class",
                      "distance_threshold": trained["out_of_scope_threshold"],
                      "quantile_of_validation": params.evaluate.out_of_scope_quantile,
                      **({"refit": "the quantile of the training slices' own distances, times the ratio of the "
                                   "validation to the training quantile measured before the refit"}
                         if trained.get("refit") else {})},
    )
    write_card(paths.trained_model, card)
    tracker.log_metrics({"test_accuracy": scores.accuracy, "test_macro_f1": scores.macro_f1,
                         "test_ece": scores.expected_calibration_error,
                         **{f"test_recall_{k}": v["recall"] for k, v in scores.per_class.items()}})
    for artifact in (paths.scores, paths.plots_dir / "confusion_matrix.png", paths.plots_dir / "training_curves.png",
                     paths.trained_model, card_path_for(paths.trained_model)):
        tracker.log_artifact(artifact, "evaluation" if artifact.suffix != ".keras" else "model")
    log.info("test: accuracy %.4f macro-F1 %.4f recall %s; series read right per class %s", scores.accuracy,
             scores.macro_f1, {k: round(v["recall"], 3) for k, v in scores.per_class.items()}, patients["right"])
    return scores, card


# Keys that only change what happens after the networks are trained.
CALIBRATION_KEYS = ("class_offsets",)


def recalibrate(paths: Paths, params: Params, *, source: Path) -> Path:
    """Fit the calibration of ``params`` anew to the networks of a shipped model, without training.

    For a change of calibration method: the networks, their training history and their split stay
    those of ``source``; it must have been trained with these parameters (calibration keys aside) on
    this manifest's split. Writes the train stage's outputs, so ``evaluate`` and ``publish`` follow.
    """
    import keras

    import mlcore.model  # noqa: F401
    from mlcore.calibration import calibrate
    from mlcore.config import TrainConfig
    from mlcore.train import plain_model

    card = read_card(source)
    if (card.training.get("params", {}).get("train") or {}).get("refit"):
        raise ValueError(f"{source.name} was refitted on its validation slices, so they cannot calibrate it; "
                         "retrain instead")
    # Options added since the card was written (also inside split and augment) count at their defaults.
    trained_with = TrainConfig().with_overrides(card.training.get("params", {}).get("train", {})).to_dict()
    wanted = params.train.to_dict()
    differ = sorted(k for k in wanted if k not in CALIBRATION_KEYS and trained_with[k] != wanted[k])
    if differ:
        raise ValueError(f"{source.name} was trained with other values of {differ}; retrain instead")
    report = json.loads(paths.ingest_report.read_text())
    if report.get("series_per_split") != card.data.get("series_per_split"):
        raise ValueError(f"{source.name} was trained on another split ({card.data.get('series_per_split')}, "
                         f"here {report.get('series_per_split')}); retrain instead")
    shipped = keras.saving.load_model(source, compile=False)
    random_split = card.metrics.get("test_random_split")
    records = read_manifest(paths.manifest)
    model, calibration = calibrate(plain_model(shipped), records, _class_names(paths), params.train.batch_size,
                                   params.evaluate.out_of_scope_quantile, class_offsets=params.train.class_offsets)
    paths.trained_model.parent.mkdir(parents=True, exist_ok=True)
    model.save(paths.trained_model)
    _write_json(paths.history, {
        "history": card.training.get("history", []), "best_epoch": card.metrics.get("best_epoch", 0),
        "best_epochs": card.metrics.get("best_epochs", []), "seconds": card.training.get("seconds"),
        "mlflow_run_id": card.training.get("mlflow_run_id"), **asdict(calibration),
        "recalibrated_from": {"model": source.name, "sha256": file_sha256(source)},
        # Retraining on the random split only to refit a calibration would cost more than all of this.
        "carried_metrics": {"test_random_split": {**random_split, "measured_for": source.name}} if random_split else {},
    })
    return paths.trained_model


def publish(paths: Paths, destination: Path | None = None) -> Path:
    """Copy the trained model and its card to the shipped location.

    Both are copied beside their targets first and then renamed into place, so the shipped pair is never
    one model's weights with another's card (the card, written by evaluate, may be missing).
    """
    destination = Path(destination or paths.model_out)
    sources = {paths.trained_model: destination, card_path_for(paths.trained_model): card_path_for(destination)}
    missing = [str(source) for source in sources if not source.is_file()]
    if missing:
        raise FileNotFoundError(f"nothing published: {', '.join(missing)} missing (run the train and evaluate stages)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staged = {}
    try:
        for source, target in sources.items():
            staged[target] = target.with_name(f".{target.name}.partial")
            shutil.copyfile(source, staged[target])
        for target, copy in staged.items():
            copy.replace(target)
    finally:
        for copy in staged.values():
            copy.unlink(missing_ok=True)
    log.info("published %s (sha256 %s)", destination, file_sha256(destination)[:12])
    return destination


def random_split_comparison(paths: Paths, params: Params, *, card_paths: tuple[Path, ...] = (),
                            epochs: int | None = None, members: int | None = None) -> Scores:
    """Train and test on a random per-image split, only to compare with published figures.

    Neighbouring slices of one patient land on both sides of such a split, so its scores
    are inflated; they are recorded in the model card beside the honest series-split scores.
    """
    overrides: dict = {"split": {"method": "random"}}
    if epochs:
        overrides["epochs"] = epochs
    if members:
        overrides["members"] = members
    leaky = Params(train=params.train.with_overrides(overrides), evaluate=params.evaluate)
    leaky_paths = replace(paths, artifacts_dir=paths.artifacts_dir / "random_split")
    stage_ingest(leaky_paths, leaky)
    stage_prepare_base_model(leaky_paths, leaky)
    stage_train(leaky_paths, leaky)
    scores, _ = stage_evaluate(leaky_paths, leaky)
    for model_path in card_paths:
        card = read_card(model_path)
        metrics = {**card.metrics, "test_random_split": {
            "note": "random per-image split, leaky (neighbouring slices on both sides); for comparison with the "
                    "literature only, never a measure of performance on new patients",
            "epochs": leaky.train.epochs, "members": leaky.train.members, "accuracy": scores.accuracy, "macro_f1": scores.macro_f1,
            "recall": {k: v["recall"] for k, v in scores.per_class.items()}}}
        write_card(model_path, replace(card, metrics=metrics))
    return scores


def run_all(paths: Paths, params: Params, *, name: str | None = None, publish_to: Path | None = None,
            on_stage: Callable[[str], None] | None = None,
            on_epoch_end: Callable[[EpochProgress], None] | None = None,
            should_stop: Callable[[], bool] | None = None, track: bool = True) -> PipelineResult:
    """Every stage in order, as one tracked run."""
    with tracked_run(name or paths.model_out.stem, enabled=track) as tracker:
        tracker.set_tags({"stages": ",".join(STAGES)})
        for stage in ("ingest", "prepare_base_model"):
            if on_stage:
                on_stage(stage)
            {"ingest": stage_ingest, "prepare_base_model": stage_prepare_base_model}[stage](paths, params)
        if on_stage:
            on_stage("train")
        fitted = stage_train(paths, params, tracker=tracker, on_epoch_end=on_epoch_end, should_stop=should_stop)
        if on_stage:
            on_stage("evaluate")
        scores, card = stage_evaluate(paths, params, tracker=tracker, name=name)
    model_path = publish(paths, publish_to) if publish_to else paths.trained_model
    return PipelineResult(model_path=model_path, card=card, test_scores=scores, fit=fitted)


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__
