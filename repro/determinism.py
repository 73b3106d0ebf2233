"""The one place where randomness, kernel choice and precision are pinned.

Same command, same machine, same backend, same library versions:
byte-identical outputs. Across machines, round-off can differ (CPU vector
units, oneDNN, GPU models), which neither backend promises to hide.

- TensorFlow: op determinism on, every training function compiled by XLA
  (XLA and TensorFlow's own kernels round differently; we keep one).
- JAX: XLA always compiles; on a GPU `--xla_gpu_deterministic_ops=true`
  makes reductions and scatters deterministic and turns off autotuning's
  timing-dependent choices.
- Precision: float32 matrix products everywhere ("fp32"); TF32 (10-bit
  mantissa products on Ampere and later GPUs) only when a run asks for it
  (`repro train --precision tf32`). CPUs have no TF32: there both are fp32.
"""

from __future__ import annotations

import os
import random

import keras
import numpy as np

PRECISIONS = ("fp32", "tf32")
_DETERMINISTIC_GPU_FLAG = "--xla_gpu_deterministic_ops=true"
_configured: dict = {}


def configure(precision: str = "fp32") -> None:
    """Pins determinism and matrix-product precision for this process (before any computation)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    from repro import backend

    if backend.NAME == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if _DETERMINISTIC_GPU_FLAG not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {_DETERMINISTIC_GPU_FLAG}".strip()
        import jax

        # "highest" is true float32 on GPUs; "tensorfloat32" allows TF32 products.
        jax.config.update("jax_default_matmul_precision", "highest" if precision == "fp32" else "tensorfloat32")
    else:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
    _configured.update(precision=precision)


def seed(value: int) -> None:
    """Seeds Python, NumPy and Keras' global generator (which draws the initial weights).

    `keras.utils.set_random_seed` also seeds TensorFlow, importing it if it is
    installed; under jax that import is what the package must never do, so
    there the same steps are taken without it.
    """
    from repro import backend

    if backend.NAME == "tensorflow":
        keras.utils.set_random_seed(value)
        return
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, value)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(value)
    np.random.seed(value)


def settings() -> dict:
    """What `configure` set: part of each run's run.json (the same wherever the run is reproduced)."""
    from repro import backend

    return {"backend": backend.NAME, "precision": _configured.get("precision", "fp32"), "xla": True,
            "device": backend.accelerator()}


def details() -> dict:
    """The machine-dependent rest, for provenance.json: devices, XLA flags, thread settings."""
    from repro import backend

    found = {**settings(), "devices": backend.devices(), "versions": backend.versions()}
    if backend.NAME == "jax":
        found["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    else:
        import tensorflow as tf

        found.update(op_determinism=True,
                     intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
                     inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads())
    return found
