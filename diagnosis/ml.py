"""The only door from Django into mlcore.

Loading a Keras model takes seconds, so each process keeps the classifiers it has loaded, keyed by
file path and SHA-256: a worker loads a model version once, then reuses it for every task. mlcore (and
with it TensorFlow) is imported lazily so the web process never pays for it unless it must.
"""

from __future__ import annotations

import hashlib
import logging
import io
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from mlcore.explain import Explainer, GradCam
    from mlcore.inference import Classifier, PredictionResult

    from .models import ModelVersion

logger = logging.getLogger(__name__)

# A worker seldom needs more than the active version and the one before it.
MAX_CACHED_CLASSIFIERS = 2

_cache: OrderedDict[tuple[str, str], Classifier] = OrderedDict()
_cache_lock = threading.Lock()
# One Grad-CAM graph per loaded classifier; it goes when its classifier leaves the cache.
_explainers: weakref.WeakKeyDictionary[Classifier, Explainer] = weakref.WeakKeyDictionary()


class ModelFileError(Exception):
    """The model file on disk is missing or is not the one the ModelVersion was registered with."""


def resolve_model_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def stored_model_path(path: str | Path) -> str:
    """Store paths inside the project relative to it, so the database survives a move of the checkout."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(Path(settings.BASE_DIR).resolve()).as_posix()
    except ValueError:
        return str(resolved)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_model_card(path: Path) -> dict[str, Any]:
    """The card beside a model file, after checking the file is a Keras archive; ValueError or OSError if not."""
    from mlcore.card import check_model_archive, read_card

    check_model_archive(path)
    return read_card(path).to_dict()


def get_classifier(model_version: ModelVersion) -> Classifier:
    path = resolve_model_path(model_version.path)
    key = (str(path), model_version.sha256)
    with _cache_lock:
        classifier = _cache.get(key)
        if classifier is not None:
            _cache.move_to_end(key)
            return classifier
        if not path.is_file():
            raise ModelFileError(f"The model file of version {model_version.name!r} is missing: {path.name}")
        actual = sha256_file(path)
        if actual != model_version.sha256:
            raise ModelFileError(
                f"The model file of version {model_version.name!r} changed on disk since it was "
                f"registered (SHA-256 {actual[:12]}…, expected {model_version.sha256[:12]}…)."
            )
        from mlcore.inference import Classifier

        started = time.monotonic()
        classifier = Classifier.load(path)
        if list(classifier.class_names) != list(model_version.class_names):
            raise ModelFileError(
                f"The model's classes {list(classifier.class_names)} differ from the registered "
                f"{list(model_version.class_names)}."
            )
        logger.info(
            "Loaded model version %s (%s) in %.1f s", model_version.name, path.name, time.monotonic() - started
        )
        _cache[key] = classifier
        while len(_cache) > MAX_CACHED_CLASSIFIERS:
            _cache.popitem(last=False)
        return classifier


def classify(*, model_version: ModelVersion, image_bytes: bytes) -> PredictionResult:
    return get_classifier(model_version).predict([image_bytes])[0]


def get_explainer(model_version: ModelVersion) -> Explainer:
    classifier = get_classifier(model_version)
    with _cache_lock:
        explainer = _explainers.get(classifier)
        if explainer is None:
            from mlcore.explain import Explainer

            explainer = Explainer(classifier.model, tuple(classifier.class_names))
            _explainers[classifier] = explainer
        return explainer


def explain(*, model_version: ModelVersion, image_bytes: bytes, class_name: str) -> GradCam:
    """Grad-CAM of the image for the class, at the image's own size."""
    from mlcore.images import load_image

    return get_explainer(model_version).explain(load_image(image_bytes), class_name)


def overlay_png(gradcam: GradCam) -> bytes:
    """The heat map as a PNG with transparency, to lay over the slice in a browser or a report."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(gradcam.overlay_rgba(), "RGBA").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _explainers.clear()


def high_bit_depth_as_png(data: bytes) -> bytes | None:
    from mlcore.images import high_bit_depth_as_png as convert

    return convert(data)


def is_dicom(data: bytes) -> bool:
    from mlcore.dicom import is_dicom as check

    return check(data)


def dicom_header(data: bytes):
    """The DICOM header's patient ID, modality and instance UIDs (mlcore.dicom.DicomHeader); raises ValueError with a
    reason."""
    from mlcore.dicom import read_header

    return read_header(data)


def dicom_as_png(data: bytes, *, max_pixels: int) -> bytes:
    """The DICOM slice windowed into 8-bit grey, as a PNG: what is stored, shown and diagnosed.

    Only the pixels are kept. The DICOM header carries the patient's name, ID and birth date,
    which the patient record already holds under the organisation's own rules.
    Raises ValueError with a reason for people.
    """
    from mlcore.dicom import dicom_as_png as convert

    return convert(data, max_pixels=max_pixels)
