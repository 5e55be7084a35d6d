from __future__ import annotations

import os

# Quiet TensorFlow's start-up chatter in test logs; it does not change results.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
