"""Command line: ``python -m mlcore train|predict``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from mlcore.config import ARCHITECTURES, TrainConfig
from mlcore.data import ImageError, data_dir_from_env


def _train(args: argparse.Namespace) -> int:
    from mlcore.train import train

    overrides = {k: v for k, v in {
        "epochs": args.epochs, "image_size": args.image_size, "batch_size": args.batch_size,
        "architecture": args.architecture, "seed": args.seed, "learning_rate": args.learning_rate,
    }.items() if v is not None}
    config = TrainConfig(**overrides)
    result = train(data_dir=args.data, out_path=args.out, config=config, name=args.name)
    summary = {
        "model": str(result.model_path),
        "seconds": round(result.seconds, 1),
        "test_accuracy": round(result.test_scores.accuracy, 4),
        "test_macro_f1": round(result.test_scores.macro_f1, 4),
        "test_recall": {k: round(v["recall"], 4) for k, v in result.test_scores.per_class.items()},
    }
    print(json.dumps(summary))
    return 0


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcore", description="kidneyweb model training and inference")
    sub = parser.add_subparsers(dest="command", required=True)

    train_p = sub.add_parser("train", help="train a classifier on a folder of class subfolders")
    train_p.add_argument("--data", type=Path, default=data_dir_from_env(), help="folder of class subfolders")
    train_p.add_argument("--out", type=Path, required=True, help="where to write the .keras model (card beside it)")
    train_p.add_argument("--name", help="model name for the card (default: file stem)")
    train_p.add_argument("--epochs", type=int)
    train_p.add_argument("--image-size", type=int)
    train_p.add_argument("--batch-size", type=int)
    train_p.add_argument("--learning-rate", type=float)
    train_p.add_argument("--architecture", choices=ARCHITECTURES)
    train_p.add_argument("--seed", type=int)
    train_p.set_defaults(func=_train)

    predict_p = sub.add_parser("predict", help="classify images; one JSON object per line")
    predict_p.add_argument("--model", type=Path, help="a .keras model (default: the shipped model)")
    predict_p.add_argument("images", nargs="+")
    predict_p.set_defaults(func=_predict)

    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("MLCORE_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    return args.func(args)
