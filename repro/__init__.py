"""grokking-repro: the results of Power et al. (2022), "Grokking", regenerated from nothing."""

import os

# Keras' backend: TensorFlow on CPUs unless KERAS_BACKEND says otherwise (jax for GPUs); see repro/backend.py.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's start-up chatter (oneDNN notices, CPU feature lines) hides our own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
