"""Plain-Python machine-learning core of kidneyweb.

Nothing in this package imports Django or Celery: it takes paths, arrays and frozen
dataclasses and returns dataclasses, so the same code serves the CLI, the DVC pipeline
and the web workers. Importing the package is cheap; TensorFlow loads only in the
modules that need it.
"""

CLASS_NAMES: tuple[str, ...] = ("Cyst", "Normal", "Stone", "Tumor")
