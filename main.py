"""Run the whole training pipeline without DVC: ingest → base model → train → evaluate → publish.

    python main.py [--params params.yaml] [--config config.yaml] [--no-publish]
"""

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mlcore.config import load_params, load_paths  # noqa: E402
from mlcore.pipeline import run_all  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--no-publish", action="store_true", help="leave the shipped model in models/ untouched")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    paths = load_paths(args.config)
    result = run_all(paths, load_params(args.params), publish_to=None if args.no_publish else paths.model_out)
    print(f"test accuracy {result.test_scores.accuracy:.4f}, macro-F1 {result.test_scores.macro_f1:.4f}; "
          f"model at {result.model_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
