"""The one place where randomness and kernel choice are pinned.

Same command, same machine, same library versions: byte-identical outputs.
Across machines, round-off can differ (CPU vector units, oneDNN), which
TensorFlow does not promise to hide.
"""

from __future__ import annotations

import tensorflow as tf
import keras


# XLA and TensorFlow's own kernels round differently: every compiled function uses this.
JIT_COMPILE = True


def configure(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras, and makes TensorFlow's kernels deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def settings() -> dict:
    """What `configure` set, for the provenance record of each run."""
    return {
        "op_determinism": True,
        "xla": JIT_COMPILE,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }
