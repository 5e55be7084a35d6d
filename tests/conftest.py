from __future__ import annotations

import contextlib
import os

# Quiet TensorFlow's start-up chatter in test logs; it does not change results.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# torchvision 0.29's C extension crashes the process (segmentation fault) when it is loaded after
# TensorFlow 2.21; loaded first, both work. Tests of both targets share one process, so load it now.
with contextlib.suppress(ImportError):
    import torchvision  # noqa: F401
