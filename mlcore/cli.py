"""Command line: ``python -m mlcore train|stage|recalibrate|compare-random-split|cross-validate|combine-cross-validations|pretrain|predict|score-confidence``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import yaml

from dataclasses import asdict, replace

from mlcore.config import ARCHITECTURES, Params, TrainConfig, load_params, load_paths
from mlcore.data import data_dir_from_env
from mlcore.images import ImageError

if TYPE_CHECKING:
    from mlcore.crossval import EpochScores


def _params(args: argparse.Namespace) -> Params:
    overrides = {k: v for k, v in {
        "epochs": getattr(args, "epochs", None), "image_size": getattr(args, "image_size", None),
        "batch_size": getattr(args, "batch_size", None), "architecture": getattr(args, "architecture", None),
        "seed": getattr(args, "seed", None), "learning_rate": getattr(args, "learning_rate", None),
        "members": getattr(args, "members", None), "width": getattr(args, "width", None),
    }.items() if v is not None}
    if overrides.get("architecture", "resnet_small") != "resnet_small":
        overrides.setdefault("members", 1)  # ensembles are of small ResNets
    if Path(args.params).exists():
        return load_params(args.params, overrides)
    return Params(train=TrainConfig().with_overrides(overrides))


def _train(args: argparse.Namespace) -> int:
    from mlcore.pipeline import run_all

    configured = load_paths(args.config)
    out = args.out or configured.model_out
    paths = replace(configured, data_dir=args.data, model_out=out,
                    artifacts_dir=Path(args.artifacts or Path("artifacts") / out.stem))
    result = run_all(paths, _params(args), name=args.name, publish_to=out, track=not args.no_track)
    scores = result.test_scores
    print(json.dumps({
        "model": str(result.model_path),
        "seconds": round(result.fit.seconds, 1) if result.fit else None,
        "test_accuracy": round(scores.accuracy, 4),
        "test_macro_f1": round(scores.macro_f1, 4),
        "test_recall": {k: round(v["recall"], 4) for k, v in scores.per_class.items()},
    }))
    return 0


def _stage(args: argparse.Namespace) -> int:
    from mlcore import pipeline
    from mlcore.tracking import tracked_run

    paths, params = load_paths(args.config), _params(args)
    if args.stage == "ingest":
        pipeline.stage_ingest(paths, params)
    elif args.stage == "prepare_base_model":
        pipeline.stage_prepare_base_model(paths, params)
    elif args.stage == "train":
        with tracked_run(paths.model_out.stem, enabled=not args.no_track) as tracker:
            pipeline.stage_train(paths, params, tracker=tracker)
    elif args.stage == "evaluate":
        run_id = json.loads(paths.history.read_text()).get("mlflow_run_id")
        with tracked_run(paths.model_out.stem, run_id=run_id, enabled=not args.no_track and bool(run_id)) as tracker:
            pipeline.stage_evaluate(paths, params, tracker=tracker)
    elif args.stage == "publish":
        pipeline.publish(paths)
    return 0


def _recalibrate(args: argparse.Namespace) -> int:
    from mlcore import pipeline

    paths, params = load_paths(args.config), _params(args)
    pipeline.recalibrate(paths, params, source=args.model)
    scores, _ = pipeline.stage_evaluate(paths, params, name=args.out.stem if args.out else None)
    if args.out:
        pipeline.publish(paths, args.out)
    print(json.dumps({"model": str(args.out or paths.trained_model), "test_accuracy": round(scores.accuracy, 4),
                      "test_macro_f1": round(scores.macro_f1, 4)}))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from mlcore.pipeline import random_split_comparison

    paths, params = load_paths(args.config), _params(args)
    scores = random_split_comparison(paths, params, card_paths=tuple(args.card_of), epochs=args.epochs,
                                     members=args.members)
    print(json.dumps({"random_split_accuracy": round(scores.accuracy, 4), "random_split_macro_f1": round(scores.macro_f1, 4)}))
    return 0


def _non_test_records(args: argparse.Namespace, params: Params) -> tuple[list, list]:
    """Every ingested record, and those outside the test split."""
    from mlcore.data import ingest

    paths = load_paths(args.config)
    records, _ = ingest(args.data or paths.data_dir, params.train.split, workdir=Path(args.workdir),
                        extra_manifests=paths.extra_manifests)
    return records, [r for r in records if r.split != "test"]


def _cross_validate(args: argparse.Namespace) -> int:
    from mlcore.crossval import cross_validate, save_held_out
    from mlcore.data import class_names_of
    from mlcore.tracking import tracked_run

    # Checked before an hour of training, not after it.
    for option, path in (("--out", args.out), ("--held-out", args.held_out)):
        if path is not None and path.is_dir():
            raise ValueError(f"{option} {path} is a folder; give a file name")

    params = _params(args)
    # The test series stay untouched, so that a recipe chosen here is still judged fairly there.
    records, kept = _non_test_records(args, params)
    with tracked_run(f"cross-validate {args.folds} folds", enabled=not args.no_track) as tracker:
        tracker.set_tags({"kind": "cross-validation"})

        def progress(fold: int, epoch: int, macro_f1: float) -> None:
            tracker.log_metrics({f"fold{fold}_macro_f1": macro_f1}, step=epoch)

        result = cross_validate(records=kept, class_names=class_names_of(records), config=params.train,
                                folds=args.folds, on_epoch_end=progress, train_fraction=args.train_fraction,
                                subsample_seed=args.subsample_seed)
        tracker.log_params({**result.config, "folds": result.folds, "series": result.series,
                            "train_fraction": result.train_fraction})
        for epoch in result.epochs:
            tracker.log_metrics({"cv_accuracy": epoch.accuracy, "cv_macro_f1": epoch.macro_f1,
                                 **{f"cv_recall_{c}": v for c, v in epoch.recall.items()}}, step=epoch.epoch)
        if args.held_out:
            save_held_out(result.held_out, args.held_out)
            tracker.log_artifact(args.held_out)
        _write_json(args.out, result.to_dict())
        if args.out:
            tracker.log_artifact(args.out)
    _print_epoch(result.last, folds=result.folds, series=result.series, series_per_class=result.series_per_class,
                 seconds=round(result.seconds, 1))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from mlcore.pretrain import pretrain
    from mlcore.tracking import tracked_run

    if args.out.is_dir():
        raise ValueError(f"--out {args.out} is a folder; give a file name ending in .keras")
    if args.out.suffix != ".keras":
        raise ValueError(f"--out {args.out} must end in .keras")
    params = _params(args)
    # The test series stay unseen, labelled or not: the model is judged on them.
    _, kept = _non_test_records(args, params)
    with tracked_run(f"pretrain {args.out.stem}", enabled=not args.no_track) as tracker:
        tracker.set_tags({"kind": "pretraining"})
        tracker.log_params({"epochs": args.epochs, "batch_size": args.pretrain_batch_size,
                            "learning_rate": args.pretrain_learning_rate, "temperature": args.temperature,
                            "image_size": params.train.image_size, "width": params.train.width,
                            "slices": len(kept)})
        result = pretrain(records=kept, config=params.train, out=args.out, epochs=args.epochs,
                          batch_size=args.pretrain_batch_size, learning_rate=args.pretrain_learning_rate,
                          temperature=args.temperature,
                          on_epoch_end=lambda epoch, loss: tracker.log_metrics({"contrastive_loss": loss}, step=epoch))
    print(json.dumps({"encoder": str(result.path), "slices": result.slices, "seconds": round(result.seconds, 1),
                      "contrastive_loss": [round(v, 4) for v in result.losses]}))
    return 0


def _combine_cross_validations(args: argparse.Namespace) -> int:
    from mlcore.crossval import combine, load_held_out, score_epochs

    combined = combine([load_held_out(path) for path in args.runs])
    epochs, per_class = score_epochs(combined), combined.series_per_class
    _write_json(args.out, {"runs": [str(p) for p in args.runs], "series_per_class": per_class,
                           "epochs": [asdict(e) for e in epochs]})
    _print_epoch(epochs[-1], runs=len(args.runs), series=sum(per_class.values()), series_per_class=per_class)
    return 0


def _write_json(path: Path | None, data: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")


def _print_epoch(epoch: EpochScores, **context: object) -> None:
    print(json.dumps({**context, "epoch": epoch.epoch, "accuracy": round(epoch.accuracy, 4),
                      "macro_f1": round(epoch.macro_f1, 4), "fold_macro_f1": [round(v, 4) for v in epoch.fold_macro_f1],
                      "recall": {k: round(v, 4) for k, v in epoch.recall.items()}, "series_right": epoch.series_right}))


def _predict(args: argparse.Namespace) -> int:
    from mlcore.inference import Classifier, default_model_path

    classifier = Classifier.load(args.model or default_model_path())
    status = 0
    for path in args.images:
        try:
            [result] = classifier.predict([Path(path)])
        except (ImageError, OSError) as exc:
            print(json.dumps({"path": path, "error": str(exc)}), flush=True)
            status = 1
            continue
        print(json.dumps({"path": path, "label": result.label, "probabilities": result.probabilities,
                          "out_of_scope": result.out_of_scope}), flush=True)
    return status


def _score_confidence(args: argparse.Namespace) -> int:
    import numpy as np

    from mlcore.card import ModelCard, own_test_records, read_card, write_card
    from mlcore.config import EvaluateConfig
    from mlcore.evaluate import by_confidence
    from mlcore.inference import Classifier, default_model_path

    model_path = args.model or default_model_path()
    card = read_card(model_path)
    if "test_series_split" not in card.metrics:
        raise ValueError(f"the card of {model_path.name} records no series test split to score")
    records = own_test_records(model_path=model_path, data_dir=args.data)
    if not records:
        raise ValueError(f"none of the test slices of {model_path.name}'s split are in {args.data}")
    classifier = Classifier.load(model_path)
    names = list(card.classes)
    results = classifier.predict([r.path for r in records])
    probabilities = np.array([[result.probabilities[c] for c in names] for result in results])
    threshold = float(card.calibration.get("confidence_threshold", EvaluateConfig().confidence_threshold))
    confidence = by_confidence([names.index(r.label) for r in records], probabilities, names, threshold,
                               [r.series for r in records], out_of_scope=[result.out_of_scope for result in results])
    metrics = {**card.metrics, "test_series_split": {**card.metrics["test_series_split"], "by_confidence": confidence}}
    write_card(model_path, ModelCard.from_dict({**card.to_dict(), "metrics": metrics}))
    print(json.dumps(confidence))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="hyper-parameters (default params.yaml)")
    parser.add_argument("--config", default="config.yaml", help="paths (default config.yaml)")
    parser.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcore", description="kidneyweb model training and inference")
    sub = parser.add_subparsers(dest="command", required=True)

    train_p = sub.add_parser("train", help="train a classifier on a folder of class subfolders")
    train_p.add_argument("--data", type=Path, default=data_dir_from_env(), help="folder of class subfolders")
    train_p.add_argument("--out", type=Path,
                         help="where to write the .keras model, its card beside it (default: config.yaml's model_out)")
    train_p.add_argument("--name", help="model name for the card (default: file stem)")
    train_p.add_argument("--epochs", type=int)
    train_p.add_argument("--image-size", type=int)
    train_p.add_argument("--batch-size", type=int)
    train_p.add_argument("--learning-rate", type=float)
    train_p.add_argument("--architecture", choices=ARCHITECTURES)
    train_p.add_argument("--seed", type=int)
    train_p.add_argument("--members", type=int, help="networks in the ensemble (default: params.yaml)")
    train_p.add_argument("--width", type=int, help="channels of the first resnet_small stage (default: params.yaml)")
    train_p.add_argument("--artifacts", help="folder for the manifest, plots and scores (default artifacts/<name>)")
    _common(train_p)
    train_p.set_defaults(func=_train)

    stage_p = sub.add_parser("stage", help="run one pipeline stage, as dvc.yaml does")
    stage_p.add_argument("stage", choices=("ingest", "prepare_base_model", "train", "evaluate", "publish"))
    _common(stage_p)
    stage_p.set_defaults(func=_stage)

    recal_p = sub.add_parser("recalibrate", help="fit params.yaml's calibration anew to a trained model's networks, "
                                                 "then evaluate it (and publish it with --out)")
    recal_p.add_argument("--model", type=Path, required=True, help="a shipped .keras model with its card")
    recal_p.add_argument("--out", type=Path, help="where to publish the recalibrated model and its card")
    _common(recal_p)
    recal_p.set_defaults(func=_recalibrate)

    compare_p = sub.add_parser("compare-random-split",
                               help="train and test on a leaky per-image split, for comparison with the literature")
    compare_p.add_argument("--epochs", type=int)
    compare_p.add_argument("--members", type=int, help="networks in the ensemble (default: as params.yaml)")
    compare_p.add_argument("--card-of", type=Path, action="append", default=[],
                           help="a model whose card records the comparison (repeatable)")
    _common(compare_p)
    compare_p.set_defaults(func=_compare)

    cv_p = sub.add_parser("cross-validate",
                          help="judge a training recipe by folds of whole series (the test series left out)")
    cv_p.add_argument("--data", type=Path, help="folder of class subfolders (default: config.yaml's data_dir)")
    cv_p.add_argument("--folds", type=int, default=5)
    cv_p.add_argument("--epochs", type=int, help="epochs per fold, all of them run (default: params.yaml)")
    cv_p.add_argument("--image-size", type=int)
    cv_p.add_argument("--width", type=int, help="channels of the first resnet_small stage")
    cv_p.add_argument("--seed", type=int)
    cv_p.add_argument("--train-fraction", type=float, default=1.0,
                      help="train each fold on this share of its training series of each class (a learning curve; "
                           "the held-out folds stay whole)")
    cv_p.add_argument("--subsample-seed", type=int, default=1000,
                      help="seeds which series --train-fraction keeps (plus the fold's number)")
    cv_p.add_argument("--out", type=Path, help="write every epoch's pooled scores here as JSON")
    cv_p.add_argument("--workdir", default="artifacts/cross_validate", help="where DICOM slices are windowed")
    cv_p.add_argument("--params", default="params.yaml", help="the recipe (default params.yaml)")
    cv_p.add_argument("--config", default="config.yaml", help="paths (default config.yaml)")
    cv_p.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")
    cv_p.add_argument("--held-out", type=Path,
                      help="write every held-out slice's probabilities at each epoch here (.npz), for combining runs")
    cv_p.set_defaults(func=_cross_validate)

    combine_p = sub.add_parser("combine-cross-validations",
                               help="score the average of cross-validation runs (--held-out files): an ensemble")
    combine_p.add_argument("runs", nargs="+", type=Path, help=".npz files that cross-validate --held-out wrote")
    combine_p.add_argument("--out", type=Path, help="write every epoch's pooled scores here as JSON")
    combine_p.set_defaults(func=_combine_cross_validations)

    pre_p = sub.add_parser("pretrain", help="pretrain resnet_small contrastively on the unlabelled training and "
                                            "validation slices; use the file as train.weights")
    pre_p.add_argument("--out", type=Path, required=True, help="the encoder to write (.keras)")
    pre_p.add_argument("--data", type=Path, help="folder of class subfolders (default: config.yaml's data_dir)")
    pre_p.add_argument("--epochs", type=int, default=40)
    pre_p.add_argument("--batch-size", dest="pretrain_batch_size", type=int, default=128,
                       help="slices per batch; each is contrasted with the other views of its batch")
    pre_p.add_argument("--learning-rate", dest="pretrain_learning_rate", type=float, default=1e-3)
    pre_p.add_argument("--temperature", type=float, default=0.2)
    pre_p.add_argument("--image-size", type=int)
    pre_p.add_argument("--width", type=int, help="channels of the first resnet_small stage (as the classifier's)")
    pre_p.add_argument("--seed", type=int)
    pre_p.add_argument("--workdir", default="artifacts/pretrain", help="where DICOM slices are windowed")
    pre_p.add_argument("--params", default="params.yaml", help="the recipe (default params.yaml)")
    pre_p.add_argument("--config", default="config.yaml", help="paths (default config.yaml)")
    pre_p.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")
    pre_p.set_defaults(func=_pretrain)

    predict_p = sub.add_parser("predict", help="classify images; one JSON object per line")
    predict_p.add_argument("--model", type=Path, help="a .keras model (default: the shipped model)")
    predict_p.add_argument("images", nargs="+")
    predict_p.set_defaults(func=_predict)

    confidence_p = sub.add_parser(
        "score-confidence", help="record in a model's card how often its results on its test split were right with "
                                 "and without the uncertain mark (the evaluate stage records it for new models)")
    confidence_p.add_argument("--model", type=Path, help="a .keras model with its card (default: the shipped model)")
    confidence_p.add_argument("--data", type=Path, default=data_dir_from_env(), help="folder of class subfolders")
    confidence_p.set_defaults(func=_score_confidence)

    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("MLCORE_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        return args.func(args)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        # Bad input (a missing file, a corrupt image or model, a wrong parameter) is the user's to fix:
        # one line that says what, not a traceback. MLCORE_LOG_LEVEL=DEBUG shows where.
        logging.getLogger(__name__).debug("failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
