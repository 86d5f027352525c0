import os
import sys

# TensorFlow's C++ start-up chatter would drown the one-JSON-per-line output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mlcore.cli import main  # noqa: E402

sys.exit(main())
