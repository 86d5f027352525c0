"""Inference speed per CT slice on one CPU core, through the path the workers use.

Compares Classifier.predict (predict_on_batch) with model.predict per image and an eager
call per image, in one run so the ratios hold on a noisy shared machine.

    python benchmarks/inference_speed.py [--model PATH] [--images N] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads TensorFlow may use")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import numpy as np

    from mlcore.data import data_dir_from_env, list_images
    from mlcore.images import load_image
    from mlcore.inference import Classifier, default_model_path

    model_path = args.model or default_model_path()
    started = time.perf_counter()
    classifier = Classifier.load(model_path)
    load_s = time.perf_counter() - started
    data_dir = data_dir_from_env()
    if data_dir.is_dir():
        records = list_images(data_dir)[:: max(1, len(list_images(data_dir)) // args.images)][: args.images]
        images = [load_image(r.path) for r in records]
    else:
        print(f"{data_dir} not found: timing synthetic 256 px slices instead")
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 255, (256, 256, 1), dtype=np.uint8) for _ in range(args.images)]
    big = [np.repeat(np.kron(img, np.ones((2, 2, 1), np.uint8)), 3, axis=-1) for img in images[:10]]

    def per_image(fn, items) -> list[float]:
        fn(items[0])  # warm-up: tracing is paid once per process, not per slice
        times = []
        for item in items:
            t = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - t) * 1000)
        return times

    path = per_image(lambda im: classifier.predict([im]), images)
    classifier.predict(images)  # warm-up: a new batch shape is traced once
    batch_t = time.perf_counter()
    classifier.predict(images)
    batched = (time.perf_counter() - batch_t) * 1000 / len(images)
    fit_predict = per_image(lambda im: classifier.model.predict(im[None], verbose=0), images[:15])
    eager = per_image(lambda im: classifier.model(im[None], training=False), images[:15])
    large = per_image(lambda im: classifier.predict([im]), big)
    median = statistics.median
    print(f"model {model_path.name}: {model_path.stat().st_size / 1e6:.1f} MB, loaded in {load_s:.1f} s, "
          f"{args.threads} thread(s), {len(images)} slices")
    print(f"Classifier.predict, one slice per call (predict_on_batch): median {median(path):.1f} ms, "
          f"p95 {sorted(path)[int(0.95 * (len(path) - 1))]:.1f} ms")
    print(f"Classifier.predict, {len(images)} slices in one call:        {batched:.1f} ms per slice")
    print(f"512 px RGB slice through Classifier.predict:          median {median(large):.1f} ms")
    print(f"model.predict per image:                              median {median(fit_predict):.1f} ms "
          f"({median(fit_predict) / median(path):.1f}x the inference path)")
    print(f"eager model(x) per image:                             median {median(eager):.1f} ms "
          f"({median(eager) / median(path):.1f}x the inference path)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
