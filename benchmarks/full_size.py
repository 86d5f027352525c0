"""How the shipped model scores on its test split when slices arrive as clinicians upload them:
RGB JPEGs of 512 px and larger, instead of the developer set's 256 px greyscale.

The developer set holds no originals, so each test slice is enlarged (Lanczos), turned into RGB
and saved as a JPEG (quality 95) before it goes through the upload decoder and the inference path.
That checks that resizing inside the model carries over to other sizes and to colour files; it
cannot add detail that the 256 px slices lost. Scores at each size print beside those of the
slices as they are, with the differences, in one run.

    python benchmarks/full_size.py [--model PATH] [--sizes 512 768]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def as_upload(path: Path, size: int) -> bytes:
    image = Image.open(path).convert("RGB").resize((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768])
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from mlcore.card import own_test_records
    from mlcore.data import data_dir_from_env
    from mlcore.images import load_image
    from mlcore.evaluate import score
    from mlcore.inference import Classifier, default_model_path

    data_dir = data_dir_from_env()
    if not data_dir.is_dir():
        print(f"{data_dir} not found: set KIDNEY_DATA_DIR to the developer set")
        return 1
    model_path = args.model or default_model_path()
    classifier = Classifier.load(model_path)
    test = own_test_records(model_path=model_path, data_dir=data_dir)
    names = list(classifier.class_names)
    y_true = np.array([names.index(r.label) for r in test])

    def scores_of(images: list[np.ndarray]):
        return score(y_true, np.asarray(classifier.probabilities(images)), names)

    rows = [("as stored (256 px grey)", scores_of([load_image(r.path) for r in test]))]
    for size in args.sizes:
        rows.append((f"{size} px RGB JPEG", scores_of([load_image(as_upload(r.path, size)) for r in test])))

    print(f"model {model_path.name}, {len(test)} test slices")
    recall_header = " / ".join(names)
    print(f"{'input':26} {'accuracy':>8} {'macro-F1':>8}  recall {recall_header}")
    base = rows[0][1]
    for label, s in rows:
        recall = " / ".join(f"{s.per_class[n]['recall']:.3f}" for n in names)
        print(f"{label:26} {s.accuracy:8.3f} {s.macro_f1:8.3f}  {recall}")
    for label, s in rows[1:]:
        worst = min(s.per_class[n]["recall"] - base.per_class[n]["recall"] for n in names)
        print(f"{label}: accuracy {s.accuracy - base.accuracy:+.3f}, macro-F1 {s.macro_f1 - base.macro_f1:+.3f}, "
              f"largest drop in a class's recall {worst:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
