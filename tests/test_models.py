import keras
import numpy as np
from keras import ops

from repro import models
from repro.config import ModelConfig


def test_transformer_has_the_papers_size():
    model = models.build(ModelConfig("transformer"), num_elements=97)
    # 2 blocks x (QKV 3·128² + output 128² + FFN 2·128·512 + 2 LayerNorms 2·2·128) + output layer 128·99
    assert models.non_embedding_parameters(model) == 2 * (3 * 128**2 + 128**2 + 2 * 128 * 512 + 4 * 128) + 128 * 99
    assert 3.5e5 < models.non_embedding_parameters(model) < 4.5e5
    assert not any("bias" in w.path for w in model.weights if "norm" not in w.path)


def test_answer_only_last_block_gives_exactly_the_full_models_logits():
    keras.utils.set_random_seed(0)
    config = ModelConfig("transformer")
    fast = models.transformer(config, 97, answer_only=True)
    full = models.transformer(config, 97, answer_only=False)
    full.set_weights(fast.get_weights())
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 97, 64), rng.integers(0, 97, 64)
    tokens = models.encode(config, a, b, a, 97)
    np.testing.assert_allclose(ops.convert_to_numpy(fast(tokens)), ops.convert_to_numpy(full(tokens)), rtol=1e-5, atol=1e-5)


def test_the_official_sequences_savings_give_exactly_its_plain_logits():
    """models.official_transformer with its savings, against the same weights computed position by position
    (the dropout path, at rate 0): the answer's and the <eos>'s logits agree."""
    keras.utils.set_random_seed(0)
    config = ModelConfig("transformer", sequence="official")
    fast = models.official_transformer(config, 97)
    plain = models.official_transformer(config, 97, dropout=True)
    for mine, theirs in zip(plain.trainable_variables, fast.trainable_variables, strict=True):
        assert mine.path == theirs.path
        mine.assign(theirs)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 97, 64), rng.integers(0, 97, 64)
    tokens = models.encode(config, a, b, (a + b) % 97, 97)
    assert tokens.shape == (64, models.OFFICIAL_LENGTH) and fast.output.shape[1:] == (2, models.OFFICIAL_VOCABULARY)
    np.testing.assert_allclose(ops.convert_to_numpy(fast(tokens)), ops.convert_to_numpy(plain(tokens)), rtol=1e-5, atol=1e-5)


def test_attention_is_causal():
    keras.utils.set_random_seed(0)
    model = models.transformer(ModelConfig("transformer", layers=1), 97, answer_only=False)
    probe = __import__("keras").Model(model.input, model.get_layer("block0_attention").output)
    tokens = models.encode(ModelConfig("transformer"), np.array([1, 1]), np.array([2, 50]), np.array([0, 0]), 97)
    out = ops.convert_to_numpy(probe(tokens))
    np.testing.assert_array_equal(out[0, :2], out[1, :2])  # positions before b do not see b
    assert not np.allclose(out[0, 2:], out[1, 2:])


def test_mlp_hidden_layer_is_a_dense_layer_on_one_hot_operands():
    keras.utils.set_random_seed(0)
    model = models.build(ModelConfig("mlp", hidden=16), num_elements=11)
    a, b = np.array([0, 3, 10]), np.array([5, 3, 0])
    kernel, bias = model.get_layer("hidden").get_weights()
    one_hot = np.concatenate([np.eye(11)[a], np.eye(11)[b]], axis=1)
    hidden = ops.convert_to_numpy(model.get_layer("hidden")(models.encode(ModelConfig("mlp"), a, b, a, 11)))
    np.testing.assert_allclose(hidden, one_hot @ kernel + bias, rtol=1e-6)
    assert model.output.shape[-1] == 11


def test_the_exact_savings_cut_the_transformers_flops_by_more_than_half():
    # XLA's own count of one update's forward and backward pass (batch 512), under jax, where it is exposed.
    import os
    import subprocess
    import sys

    from conftest import REPO
    script = (
        "import jax, jax.numpy as jnp, numpy as np\n"
        "from repro import models\n"
        "from repro.config import ModelConfig\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.integers(0, 97, 512)\n"
        "x = jnp.asarray(models.encode(ModelConfig('transformer'), a, rng.integers(0, 97, 512), a, 97))\n"
        "y = jnp.asarray(rng.integers(0, 97, 512))\n"
        "for answer_only in (False, True):\n"
        "    m = models.transformer(ModelConfig('transformer'), 97, answer_only=answer_only)\n"
        "    def loss(p):\n"
        "        logits, _ = m.stateless_call(p, [], x)\n"
        "        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], -1))\n"
        "    cost = jax.jit(jax.grad(loss)).lower([v.value for v in m.trainable_variables]).compile().cost_analysis()\n"
        "    print((cost[0] if isinstance(cost, list) else cost)['flops'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    full, fast = map(float, result.stdout.split())
    # Measured with Keras 3.15.1 on jax 0.10.2 (CPU): 4.95 and 2.01 GFLOP (the last-block saving alone: 2.62).
    assert 4.5e9 < full < 5.5e9
    assert fast < 0.45 * full
