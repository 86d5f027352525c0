"""Plain-Python machine-learning core of kidneyweb.

Nothing in this package imports Django or Celery: it takes paths, arrays and frozen
dataclasses and returns dataclasses, so the same code serves the CLI, the DVC pipeline
and the web workers. Importing the package is cheap; TensorFlow loads only in the
modules that need it.
"""

CLASS_NAMES: tuple[str, ...] = ("Cyst", "Normal", "Stone", "Tumor")

# The model this repository ships, relative to its root: what the web app serves and `make train` and
# the pipeline write unless told otherwise. A new version is named here and in config.yaml's model_out,
# which a test holds equal.
SHIPPED_MODEL: str = "models/kidney-resnet-v5.keras"
