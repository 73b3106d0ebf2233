"""A second implementation of the paper's transformer and optimiser, for the differential test (test_fidelity.py).

Plain jax.numpy and jax.grad, written from the official code (openai/grok: grok/transformer.py,
grok/training.py), not from ours: every position computed through every block, separate query, key and
value projections per head, the loss the mean cross-entropy over the scored positions, and the official
CustomAdamW with its LambdaLR warm-up. It shares nothing with repro/ but the weights it starts from, which
`from_ours` renames. Not part of the package.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def position_encoding(length: int, width: int, dtype) -> jnp.ndarray:
    """The official `_position_encoding`: sin(pos / 10000^(i/d)) at even i, cos(pos / 10000^((i-1)/d)) at odd i."""
    rows = [[math.sin(pos / 10000 ** (i / width)) if i % 2 == 0 else math.cos(pos / 10000 ** ((i - 1) / width))
             for i in range(width)] for pos in range(length)]
    return jnp.asarray(np.array(rows, dtype=np.float32), dtype=dtype)  # a float32 buffer, as torch.tensor makes


def from_ours(weights: list[np.ndarray], layers: int, dtype=jnp.float32) -> dict:
    """Our model's trainable weights (models.transformer's order) as the official module's parameters."""
    it = iter(weights)
    params = {"embedding": next(it), "blocks": []}
    for _ in range(layers):
        qkv, wo, g1, b1, w1, w2, g2, b2 = (next(it) for _ in range(8))
        width = qkv.shape[0]
        params["blocks"].append({"Wq": qkv[:, :width], "Wk": qkv[:, width:2 * width], "Wv": qkv[:, 2 * width:],
                                 "Wo": wo, "attn_norm": (g1, b1), "ffn": (w1, w2), "ffn_norm": (g2, b2)})
    params["linear"] = next(it)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=dtype), params)


def to_ours(params: dict) -> list[np.ndarray]:
    """The inverse of `from_ours`."""
    out = [params["embedding"]]
    for block in params["blocks"]:
        out += [jnp.concatenate([block["Wq"], block["Wk"], block["Wv"]], axis=1), block["Wo"], *block["attn_norm"],
                *block["ffn"], *block["ffn_norm"]]
    return [np.asarray(a) for a in [*out, params["linear"]]]


def _layer_norm(x, gain, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(variance + eps) * gain + bias


def logits(params: dict, tokens: jnp.ndarray, heads: int, flips: list | None = None,
           kept: list | None = None) -> jnp.ndarray:
    """The official Transformer.forward: (batch, length) tokens to (batch, length, vocabulary) logits.

    `flips`: per block, a boolean (batch, length, feedforward) array of ReLUs to put on the other side of their
    kink (for the differential test's round-off at the kink); `kept`: a list that gets, per block, the ReLUs'
    inputs z and the sums of |terms| behind them (the scale of their float32 round-off).
    """
    batch, length = tokens.shape
    x = params["embedding"][tokens] + position_encoding(length, params["embedding"].shape[1], params["embedding"].dtype)
    allowed = jnp.tril(jnp.ones((length, length), dtype=bool))
    for i, block in enumerate(params["blocks"]):
        width = x.shape[-1]
        key_width = width // heads
        results = []
        for h in range(heads):  # AttentionHead, one by one, then concatenated
            cols = slice(h * key_width, (h + 1) * key_width)
            q, k, v = (x @ block[w][:, cols] for w in ("Wq", "Wk", "Wv"))
            scores = q @ jnp.swapaxes(k, -2, -1) / math.sqrt(key_width)
            scores = jnp.where(allowed, scores, -jnp.inf)
            results.append(jax.nn.softmax(scores, axis=-1) @ v)
        attended = jnp.concatenate(results, axis=-1) @ block["Wo"]
        x = _layer_norm(x + attended, *block["attn_norm"])
        w1, w2 = block["ffn"]
        z = x @ w1
        if kept is not None:
            kept.append((z, jnp.abs(x) @ jnp.abs(w1)))
        active = z > 0 if flips is None else (z > 0) ^ flips[i]
        x = _layer_norm(x + jnp.where(active, z, 0) @ w2, *block["ffn_norm"])  # ReLU
    return x @ params["linear"]


def loss(params: dict, tokens, targets, positions: list[int], heads: int, flips: list | None = None):
    """F.cross_entropy over the scored positions (the right-hand side), their mean over the batch and positions."""
    out = logits(params, tokens, heads, flips)[:, jnp.asarray(positions)]  # (batch, scored, vocabulary)
    picked = jnp.take_along_axis(jax.nn.log_softmax(out, axis=-1), targets[..., None], axis=-1)[..., 0]
    return -picked.mean()


def adamw(params, grads, state, update: int, learning_rate=1e-3, weight_decay=0.0, betas=(0.9, 0.98),
          eps=1e-8, warmup=10, keras_epsilon=False):
    """The official CustomAdamW step (weight_decay_form "to_zero") at the LambdaLR rate of `update` (0-based).

    `keras_epsilon`: ε added to √v rather than to √v̂, as Keras' Adam does (the same as ε/√(1 − β2^t) in the
    official form; the two agree once β2^t is small).
    """
    lr = min(update / max(warmup, 1), 1.0) * learning_rate
    t = update + 1
    beta1, beta2 = betas
    m, v = state
    m = jax.tree_util.tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, v, grads)
    correction1, correction2 = 1 - beta1 ** t, 1 - beta2 ** t
    scale = eps / math.sqrt(correction2) if keras_epsilon else eps

    def step(p, m, v):
        p = p * (1 - lr * weight_decay)
        return p - lr / correction1 * m / (jnp.sqrt(v) / math.sqrt(correction2) + scale)

    return jax.tree_util.tree_map(step, params, m, v), (m, v)


def train(params: dict, batches: list[tuple], positions: list[int], heads: int, **optimiser) -> list[dict]:
    """The parameters after each update of `batches` [(tokens, targets)], from `params`; update 0 first."""
    grad = jax.jit(jax.grad(loss), static_argnums=(3, 4))
    state = (jax.tree_util.tree_map(jnp.zeros_like, params),) * 2
    found = []
    for update, (tokens, targets) in enumerate(batches):
        grads = grad(params, tokens, targets, tuple(positions), heads)
        params, state = adamw(params, grads, state, update, **optimiser)
        found.append(params)
    return found
