"""grokking-repro: the results of Power et al. (2022), "Grokking", regenerated from nothing."""

import os

# Keras' backend: TensorFlow on CPUs unless KERAS_BACKEND says otherwise (jax for GPUs); see repro/backend.py.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's start-up chatter (CPU feature lines) hides our own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN's TensorFlow kernels: on by default only on CPUs with AVX-512 VNNI or AMX, where TensorFlow then
# prints "oneDNN custom operations are on" through absl before TF_CPP_MIN_LOG_LEVEL can silence it. Our
# training and evaluation run in XLA programs, which oneDNN's switch does not reach (on an Intel AVX-512 host,
# issue 25 measured the same bytes with it on and off), so it is off everywhere: one kernel path on every CPU, no notice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
