"""grokking-repro: the results of Power et al. (2022), "Grokking", regenerated from nothing."""

import os

# The training loop is a TensorFlow graph; Keras must use the same backend.
os.environ["KERAS_BACKEND"] = "tensorflow"
# TensorFlow's start-up chatter (oneDNN notices, CPU feature lines) hides our own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
