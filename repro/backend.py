"""The one module that knows which Keras backend runs: compiled loops, per-run maps, gradients, random numbers.

`KERAS_BACKEND` picks it: `tensorflow` (the default, for CPUs) or `jax` (for
GPUs; it runs on a CPU too). Everything else in the package is written in
`keras.ops` and calls the few functions here, so under jax nothing imports
TensorFlow (the GPU machines have none), and under tensorflow nothing imports
JAX.

Runs of a group are stacked along a leading axis. `map_runs` applies a
per-run function to every run: jax.vmap on JAX; on TensorFlow it writes
each run's computation out, which XLA on a CPU ran ~1.5x faster than
`vectorized_map` for 8 MLP runs (issue 10's measurement).
"""

from __future__ import annotations

import keras  # repro/__init__.py has chosen the backend (KERAS_BACKEND, default tensorflow) before this import

NAME = keras.backend.backend()
if NAME not in ("tensorflow", "jax"):
    raise ImportError(f"KERAS_BACKEND={NAME!r} is not supported; use 'tensorflow' (CPU default) or 'jax' (GPU)")

if NAME == "jax":
    import jax
    import jax.numpy as jnp

    def compile(function):
        return jax.jit(function)

    def map_runs(function, *stacked):
        return jax.vmap(function)(*stacked)

    def loop(count, body, state):
        """state = body(i, state) for i in 0 … count - 1, compiled as one loop."""
        return jax.lax.fori_loop(0, count, body, state)

    def value_and_grad(function):
        """(loss, aux), gradients of `function(params, *args) -> (loss, aux)` with respect to params."""
        return jax.value_and_grad(function, has_aux=True)

    def _key(key):
        return jax.random.wrap_key_data(keras.ops.cast(key, "uint32"), impl="threefry2x32")

    def fold_in(key, data):
        return keras.ops.cast(jax.random.key_data(jax.random.fold_in(_key(key), data)), "int32")

    def uniform(shape, key):
        return jax.random.uniform(_key(key), shape, dtype=jnp.float32)

    def normal(shape, key):
        return jax.random.normal(_key(key), shape, dtype=jnp.float32)

    def devices() -> list[str]:
        return [f"{d.platform}:{getattr(d, 'device_kind', d.platform)}" for d in jax.devices()]

    def versions() -> dict[str, str]:
        import jaxlib

        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}

else:
    import tensorflow as tf

    def compile(function):
        return tf.function(function, jit_compile=True)

    def map_runs(function, *stacked):
        count = keras.tree.flatten(stacked)[0].shape[0]
        outputs = [function(*keras.tree.map_structure(lambda a, r=r: a[r], stacked)) for r in range(count)]
        return keras.tree.map_structure(lambda *per_run: tf.stack(per_run), *outputs)

    def loop(count, body, state):
        """state = body(i, state) for i in 0 … count - 1, compiled as one loop."""
        _, state = tf.while_loop(lambda i, _: i < count, lambda i, s: (i + 1, body(i, s)), (tf.constant(0), state))
        return state

    def value_and_grad(function):
        """(loss, aux), gradients of `function(params, *args) -> (loss, aux)` with respect to params."""

        def wrapped(params, *args):
            with tf.GradientTape() as tape:
                tape.watch(params)
                loss, aux = function(params, *args)
            # Gathers give sparse gradients; Adam's moments are dense anyway, and one dense
            # conversion is cheaper than a sparse path.
            return (loss, aux), [tf.convert_to_tensor(g) for g in tape.gradient(loss, params)]

        return wrapped

    def fold_in(key, data):
        return tf.random.experimental.stateless_fold_in(key, data)

    # XLA on a CPU draws ThreeFry numbers ~6x faster than TensorFlow's default algorithm.
    def uniform(shape, key):
        return tf.random.stateless_uniform(shape, key, alg="threefry")

    def normal(shape, key):
        return tf.random.stateless_normal(shape, key, alg="threefry")

    def devices() -> list[str]:
        return [d.name for d in tf.config.list_logical_devices()]

    def versions() -> dict[str, str]:
        return {"tensorflow": tf.__version__, "tensorflow_git": tf.version.GIT_VERSION}


def accelerator() -> str:
    """"gpu" when the backend computes on a GPU, else "cpu"."""
    return "gpu" if any("gpu" in d.lower() or "cuda" in d.lower() for d in devices()) else "cpu"
