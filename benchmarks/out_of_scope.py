"""How often the shipped model flags what is not a kidney CT slice, and how often it wrongly
flags real slices.

Out-of-scope images are made here: photographs (colour scenes), blank and noise images,
chest-radiograph-like projections (bright bones and dark lung fields on a bright body),
and text documents. In-scope images are the test-split slices of the developer set, split as the
model card says the model was.

    python benchmarks/out_of_scope.py [--model PATH] [--per-kind 40]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402


def photograph(rng: np.random.Generator) -> np.ndarray:
    h, w = rng.integers(300, 700, 2)
    sky = np.linspace([120, 170, 235], [200, 220, 250], h)[:, None, :] * np.ones((1, w, 1))
    image = sky + rng.normal(0, 6, (h, w, 3))
    ground = int(h * rng.uniform(0.5, 0.8))
    image[ground:] = [rng.uniform(40, 90), rng.uniform(100, 150), rng.uniform(30, 70)]
    image[ground:] += rng.normal(0, 12, (h - ground, w, 3))
    return image.clip(0, 255).astype(np.uint8)


def blank(rng: np.random.Generator) -> np.ndarray:
    return np.full((256, 256, 1), rng.integers(0, 256), np.uint8)


def noise(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (256, 256, int(rng.choice([1, 3]))), dtype=np.uint8)


def chest_radiograph(rng: np.random.Generator) -> np.ndarray:
    size = 512
    image = Image.new("L", (size, size), int(rng.integers(170, 220)))
    draw = ImageDraw.Draw(image)
    for cx in (size * 0.32, size * 0.68):  # dark lung fields
        draw.ellipse([cx - 95 + rng.integers(-10, 10), 90, cx + 95, 430], fill=int(rng.integers(30, 70)))
    draw.rectangle([size / 2 - 18, 40, size / 2 + 18, 500], fill=235)  # spine
    for y in range(110, 420, 34):  # ribs
        draw.arc([60, y - 40, size - 60, y + 60], 200, 340, fill=240, width=7)
    draw.ellipse([size / 2 - 20, 250, size / 2 + 110, 410], fill=200)  # heart
    blurred = image.filter(ImageFilter.GaussianBlur(4))
    return (np.asarray(blurred, np.float32) + rng.normal(0, 3, (size, size))).clip(0, 255).astype(np.uint8)[..., None]


def document(rng: np.random.Generator) -> np.ndarray:
    image = Image.new("L", (400, 520), 245)
    draw = ImageDraw.Draw(image)
    for line in range(30):
        y = 30 + line * 16
        draw.rectangle([30, y, 30 + int(rng.integers(150, 340)), y + 7], fill=int(rng.integers(20, 60)))
    return np.asarray(image)[..., None]


KINDS = {"photograph": photograph, "blank": blank, "noise": noise, "chest radiograph-like": chest_radiograph,
         "document": document}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--per-kind", type=int, default=40)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mlcore.card import own_test_records
    from mlcore.data import data_dir_from_env
    from mlcore.images import load_image
    from mlcore.inference import Classifier, default_model_path

    model_path = args.model or default_model_path()
    classifier = Classifier.load(model_path)
    rng = np.random.default_rng(0)
    print(f"{'kind':24} {'images':>6} {'flagged':>8}")
    for kind, make in KINDS.items():
        results = classifier.predict([make(rng) for _ in range(args.per_kind)])
        rate = np.mean([r.out_of_scope for r in results])
        print(f"{kind:24} {len(results):6d} {rate:8.1%}")
    data_dir = data_dir_from_env()
    if data_dir.is_dir():
        test = own_test_records(model_path=model_path, data_dir=data_dir)
        results = classifier.predict([load_image(r.path) for r in test])
        rate = np.mean([r.out_of_scope for r in results])
        print(f"{'real test-split slices':24} {len(results):6d} {rate:8.1%}  (false alarms)")
        upscaled = [np.repeat(np.kron(load_image(r.path), np.ones((2, 2, 1), np.uint8)), 3, -1) for r in test[::8]]
        rate = np.mean([r.out_of_scope for r in classifier.predict(upscaled)])
        print(f"{'same, 512 px RGB':24} {len(upscaled):6d} {rate:8.1%}  (false alarms)")
    else:
        print(f"{data_dir} not found: no false-alarm rate on real slices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
