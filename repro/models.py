"""The two models, in the Keras functional API.

`transformer`: the paper's decoder-only transformer (PAPER.md §2), as in the
official code: learned token embedding plus a fixed sinusoidal position
encoding, post-LayerNorm blocks, causal multi-head attention, a ReLU
feed-forward layer, no bias in any linear layer, a bias-free output layer over
the whole vocabulary. Initialisation follows PyTorch's defaults, which the
official code uses: embeddings N(0, 1), linear weights U(±1/√fan_in).

Only the answer is scored, and it is read at the position of "=", the last
input. So the last block computes its query, attention output and
feed-forward for that position alone, while its keys and values still come
from every position; and rows that depend on one token alone are computed
once per token and gathered (`transformer` lists where). The logits are
exactly those of the full model, for 41% of its FLOPs.

`mlp`: one hidden layer of ReLU units fed both operands, the answer's class out
(PAPER.md §5).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from repro import backend
from repro.config import ModelConfig

SEQUENCE_LENGTH = 4  # a ∘ b =  (the answer c is predicted at "=")

# The official code's sequence (ModelConfig.sequence "official"): <eos> a ∘ b = c <eos>, fed all but its last
# token, scored at "=" (the answer) and at c (the <eos> after it), over its tokenizer's 239 tokens: <eos>, =,
# 20 operators, the numbers 0…96 and the 120 permutations of S5. Here <eos> is token 0, = is 1, the table's
# operator 2 (the other 19 operator slots unused) and element e token 22 + e: the same number of tokens, and
# of output classes never seen, as the official tokenizer has for either kind of table.
OFFICIAL_LENGTH = 6
OFFICIAL_VOCABULARY = 239
_EOS, _OFFICIAL_EQUALS, _OFFICIAL_OPERATOR, _ELEMENT_OFFSET = 0, 1, 2, 22


def _torch_linear_init() -> keras.initializers.Initializer:
    # U(-1/√fan_in, 1/√fan_in), PyTorch's nn.Linear default.
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")


def _dense(units: int, name: str, **kwargs) -> keras.layers.Dense:
    return keras.layers.Dense(
        units, use_bias=False, kernel_initializer=_torch_linear_init(), name=name, **kwargs
    )


@keras.saving.register_keras_serializable(package="repro")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Adds the official code's fixed encoding: sin(pos/10000^(i/d)) at even i, cos at odd i."""

    def build(self, input_shape):
        length, width = input_shape[-2], input_shape[-1]
        position = np.arange(length)[:, None]
        even = np.arange(width) - np.arange(width) % 2
        angle = position / 10000 ** (even / width)
        table = np.where(np.arange(width) % 2 == 0, np.sin(angle), np.cos(angle))
        self.encoding = ops.convert_to_tensor(table.astype("float32"))

    def call(self, x):
        return x + self.encoding


@keras.saving.register_keras_serializable(package="repro")
class Projection(keras.layers.Layer):
    """A block's fused, bias-free query/key/value projection: `part` is "query", "key_value" or "all".

    One kernel, sliced by part, so that the rows that need only keys and
    values (or only queries) are not projected for the rest.
    """

    def build(self, input_shape):
        width = input_shape[-1]
        self.width = width
        self.kernel = self.add_weight(shape=(width, 3 * width), initializer=_torch_linear_init(), name="kernel")

    def call(self, x, part="all"):
        columns = {"query": slice(0, self.width), "key_value": slice(self.width, None), "all": slice(None)}[part]
        return ops.matmul(x, self.kernel[:, columns])


@keras.saving.register_keras_serializable(package="repro")
class CausalAttention(keras.layers.Layer):
    """Multi-head causal attention of projected queries over projected keys and values, then the output projection.

    `queries` (batch, q, width) are those of the last q positions of the
    sequence whose `keys_values` (batch, length, 2·width) are given; each sees
    the keys up to its own position.
    """

    def __init__(self, heads: int, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads

    def build(self, queries_shape, keys_values_shape):
        width = queries_shape[-1]
        self.width = width
        self.output_kernel = self.add_weight(
            shape=(width, width), initializer=_torch_linear_init(), name="output_kernel"
        )

    def _split_heads(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, self.heads, self.width // self.heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, queries, keys_values):
        width = self.width
        q = self._split_heads(queries)
        k, v = self._split_heads(keys_values[..., :width]), self._split_heads(keys_values[..., width:])
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(width // self.heads)
        num_queries, length = queries.shape[1], keys_values.shape[1]
        # Query i sits at position (length - num_queries + i) and sees keys up to it.
        allowed = np.arange(length)[None, :] <= np.arange(length - num_queries, length)[:, None]
        scores = ops.where(allowed, scores, -1e9)
        attended = ops.matmul(ops.softmax(scores, axis=-1), v)
        attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (-1, num_queries, width))
        return ops.matmul(attended, self.output_kernel)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads}


@keras.saving.register_keras_serializable(package="repro")
class OperandDense(keras.layers.Layer):
    """A Dense layer on the concatenated one-hot codes of two operands.

    Computed as the sum of two gathered kernel rows plus the bias, which is the
    same function without the matrix product over one-hot zeros.
    """

    def __init__(self, num_elements: int, units: int, **kwargs):
        super().__init__(**kwargs)
        self.num_elements, self.units = num_elements, units

    def build(self, input_shape):
        fan_in = 2 * self.num_elements
        self.kernel = self.add_weight(shape=(fan_in, self.units), initializer=_torch_linear_init(), name="kernel")
        bound = 1 / math.sqrt(fan_in)
        self.bias = self.add_weight(
            shape=(self.units,), initializer=keras.initializers.RandomUniform(-bound, bound), name="bias"
        )

    def call(self, operands):
        first = ops.take(self.kernel, operands[:, 0], axis=0)
        second = ops.take(self.kernel, operands[:, 1] + self.num_elements, axis=0)
        return first + second + self.bias

    def get_config(self):
        return {**super().get_config(), "num_elements": self.num_elements, "units": self.units}


@keras.saving.register_keras_serializable(package="repro")
class Dropout(keras.layers.Layer):
    """Inverted dropout in training, identity otherwise, with its rate and random key as inputs.

    Both live in non-trainable variables that the trainer sets for each run
    and update through `stateless_call`: one compiled program trains runs of
    different rates (rate 0 is the identity), and every mask is keyed by
    (seed, update, layer), so a resumed run draws the same masks.
    """

    def build(self, input_shape):
        self.rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rate")
        self.key = self.add_weight(shape=(2,), initializer="zeros", dtype="int32", trainable=False, name="key")

    def call(self, x, training=False):
        if not training:
            return x
        keep = backend.uniform(ops.shape(x), self.key) >= self.rate
        return ops.where(keep, x / (1 - self.rate), 0.0)


def _dropout(x, dropout: bool, name: str):
    return Dropout(name=name)(x) if dropout else x


@keras.saving.register_keras_serializable(package="repro")
class ConstantTokens(keras.layers.Layer):
    """A fixed table of token rows, whatever the input: the rows that a position-wise computation shares."""

    def __init__(self, rows: list[list[int]], **kwargs):
        super().__init__(**kwargs)
        self.rows = [list(map(int, row)) for row in rows]

    def call(self, tokens):
        return ops.convert_to_tensor(np.array(self.rows, dtype=np.int32))

    def compute_output_spec(self, tokens):
        return keras.KerasTensor((len(self.rows), len(self.rows[0])), dtype="int32")

    def get_config(self):
        return {**super().get_config(), "rows": self.rows}


class _Block:
    """One post-LayerNorm block's layers, callable more than once (shared weights)."""

    def __init__(self, config: ModelConfig, i: int, dropout: bool):
        self.projection = Projection(name=f"block{i}_qkv")
        self.attention = CausalAttention(config.heads, name=f"block{i}_attention")
        self.attention_dropout = Dropout(name=f"block{i}_attention_dropout") if dropout else None
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_attention_norm")
        self.ffn_in = _dense(config.feedforward, f"block{i}_ffn_in", activation="relu")
        self.ffn_out = _dense(config.width, f"block{i}_ffn_out")
        self.ffn_dropout = Dropout(name=f"block{i}_ffn_dropout") if dropout else None
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ffn_norm")

    def __call__(self, queries, sequence):
        """The block at `queries`, the last positions of `sequence` (or all of them)."""
        return self.finish(queries, self.projection(queries, part="query"), self.projection(sequence, part="key_value"))

    def finish(self, queries, projected_queries, keys_values):
        """The block at `queries` from their projections and the keys and values of the whole sequence."""
        attended = self.attention(projected_queries, keys_values)
        if self.attention_dropout is not None:
            attended = self.attention_dropout(attended)
        h = self.attention_norm(queries + attended)
        f = self.ffn_out(self.ffn_in(h))
        if self.ffn_dropout is not None:
            f = self.ffn_dropout(f)
        return self.ffn_norm(h + f)


def transformer(config: ModelConfig, num_elements: int, dropout: bool = False, answer_only: bool = True) -> keras.Model:
    """Input: token ids [a, ∘, b, =]; output: logits over the vocabulary at "=".

    `dropout` adds residual dropout layers: on each sublayer's output before it
    joins the residual stream (their rate is set per run, see `Dropout`).

    Three exact savings, all off with `answer_only=False`, which computes every
    position through every block as the official code does (same weights,
    same logits; a test compares them):
    - the last block computes only the position of "=" (keys and values still
      come from every position);
    - under causal attention the first two positions (a and ∘) depend on a
      alone, so every block but the last computes them once per element
      (97 or 120 rows) instead of once per example (512), and so does every
      block's key-value projection of them; each example gathers its a's rows;
    - the first block's input at a position is a function of that position's
      token, so its query, key and value projections at b and "=" are
      computed once per token and gathered too.
    XLA counts 4.95 GFLOP for one update of 512 examples of the full model
    (forward and backward), 2.62 with the first saving and 2.01 with all
    three (a test checks that fewer than 45% remain). With dropout the masks
    must differ per example, so then every example computes every position
    (but the last block still only "=").
    """
    vocab_size = num_elements + 2  # the elements, then ∘ and =
    tokens = keras.Input(shape=(SEQUENCE_LENGTH,), dtype="int32", name="tokens")
    embedding = keras.layers.Embedding(
        vocab_size, config.width, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
        name="token_embedding",
    )
    position = SinusoidalPositionEncoding(name="position_encoding")
    blocks = [_Block(config, i, dropout) for i in range(config.layers)]
    if not answer_only or dropout:
        x = position(embedding(tokens))
        for i, block in enumerate(blocks):
            last = answer_only and i == config.layers - 1
            x = block(x[:, -1:, :] if last else x, x)
        answer = x
    else:
        operator = num_elements
        answer = _saving(tokens, embedding, position, blocks, [[e, operator] for e in range(num_elements)],
                         vocab_size, tokens[:, 0], scored=1)
    # the bias-free output layer, read at "="
    return keras.Model(tokens, _dense(vocab_size, "output")(answer[:, -1, :]), name="transformer")


def official_transformer(config: ModelConfig, num_elements: int, dropout: bool = False) -> keras.Model:
    """The same blocks on the official code's sequence (OFFICIAL_LENGTH): input [<eos>, a, ∘, b, =, c];
    output (batch, 2, vocabulary): the logits at "=" (the answer) and at c (the <eos> after it).

    The savings of `transformer`, where the first three positions depend on a alone: the last block computes
    the two scored positions only, every other block computes <eos>, a and ∘ once per element, and the first
    block projects b, = and c once per token (without dropout).
    """
    vocab_size = max(OFFICIAL_VOCABULARY, _ELEMENT_OFFSET + num_elements)
    tokens = keras.Input(shape=(OFFICIAL_LENGTH,), dtype="int32", name="tokens")
    embedding = keras.layers.Embedding(
        vocab_size, config.width, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
        name="token_embedding",
    )
    position = SinusoidalPositionEncoding(name="position_encoding")
    blocks = [_Block(config, i, dropout) for i in range(config.layers)]
    if dropout:
        x = position(embedding(tokens))  # (batch, 6, width)
        for i, block in enumerate(blocks):
            x = block(x[:, -2:, :] if i == config.layers - 1 else x, x)
    else:
        prefixes = [[_EOS, _ELEMENT_OFFSET + e, _OFFICIAL_OPERATOR] for e in range(num_elements)]
        x = _saving(tokens, embedding, position, blocks, prefixes, vocab_size, tokens[:, 1] - _ELEMENT_OFFSET, scored=2)
    return keras.Model(tokens, _dense(vocab_size, "output")(x), name="official_transformer")  # (batch, 2, vocab)


def _saving(tokens, embedding, position, blocks, prefixes: list[list[int]], vocab_size: int, element, scored: int):
    """The blocks of a sequence whose first positions (`prefixes`, one row per element) depend on an element
    alone: those positions computed once per element and gathered by `element` (each example's, as an index),
    the first block's projections of the other positions once per token, and the last block at the last
    `scored` positions only. Returns the last block's output there: (batch, scored, width)."""
    length, first = tokens.shape[1], len(prefixes[0])
    prefix_tokens = ConstantTokens(prefixes, name="element_prefixes")(tokens)
    prefix = SinusoidalPositionEncoding(name="prefix_position_encoding")(embedding(prefix_tokens))  # (elements, first, w)
    every_token = ConstantTokens([[t] * length for t in range(vocab_size)], name="every_token")(tokens)
    by_token = position(embedding(every_token))[:, first:, :]  # (vocab, rest, width): any token at each later position
    suffix = position(embedding(tokens))[:, first:, :]
    width = suffix.shape[-1]
    for i, block in enumerate(blocks):
        last = i == len(blocks) - 1
        if i == 0:
            table = block.projection(by_token, part="all")
            projected = ops.stack([ops.take(table[:, j], tokens[:, first + j], axis=0)
                                   for j in range(length - first)], axis=1)
            suffix_queries, suffix_keys_values = projected[..., :width], projected[..., width:]
        else:
            suffix_keys_values = block.projection(suffix, part="key_value")
            suffix_queries = block.projection(suffix[:, -scored:, :] if last else suffix, part="query")
        prefix_projected = block.projection(prefix, part="key_value" if last else "all")
        prefix_keys_values = prefix_projected[..., -2 * width:]
        keys_values = ops.concatenate([ops.take(prefix_keys_values, element, axis=0), suffix_keys_values], axis=1)
        if last:
            suffix = block.finish(suffix[:, -scored:, :], suffix_queries[:, -scored:, :], keys_values)
        else:
            prefix = block.finish(prefix, prefix_projected[..., :width], prefix_keys_values)
            suffix = block.finish(suffix, suffix_queries, keys_values)
    return suffix


def mlp(config: ModelConfig, num_elements: int, dropout: bool = False) -> keras.Model:
    """Input: element ids [a, b]; output: logits over the elements. `dropout` acts on the hidden units."""
    operands = keras.Input(shape=(2,), dtype="int32", name="operands")
    hidden = OperandDense(num_elements, config.hidden, name="hidden")(operands)
    hidden = keras.layers.ReLU(name="relu")(hidden)
    hidden = _dropout(hidden, dropout, "hidden_dropout")
    bound = 1 / math.sqrt(config.hidden)
    logits = keras.layers.Dense(
        num_elements, kernel_initializer=_torch_linear_init(),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound), name="output",
    )(hidden)
    return keras.Model(operands, logits, name="mlp")


def build(config: ModelConfig, num_elements: int, dropout: bool = False) -> keras.Model:
    if config.kind == "transformer" and config.sequence == "official":
        return official_transformer(config, num_elements, dropout=dropout)
    return {"transformer": transformer, "mlp": mlp}[config.kind](config, num_elements, dropout=dropout)


def encode(config: ModelConfig, a: np.ndarray, b: np.ndarray, c: np.ndarray, num_elements: int) -> np.ndarray:
    """The model inputs for equations a ∘ b = c: token sequences or operand pairs (c only in the official
    sequence, where the <eos> after it is scored, and causal attention keeps it from the answer's position)."""
    if config.kind == "mlp":
        return np.stack([a, b], axis=1).astype(np.int32)
    column = np.ones_like(a)
    if config.sequence == "official":
        return np.stack([_EOS * column, _ELEMENT_OFFSET + a, _OFFICIAL_OPERATOR * column, _ELEMENT_OFFSET + b,
                         _OFFICIAL_EQUALS * column, _ELEMENT_OFFSET + c], axis=1).astype(np.int32)
    operator, equals = num_elements, num_elements + 1
    return np.stack([a, operator * column, b, equals * column], axis=1).astype(np.int32)


def labels(config: ModelConfig, c: np.ndarray) -> np.ndarray:
    """The answers as output classes: the elements' own indices, or their tokens in the official sequence."""
    offset = _ELEMENT_OFFSET if config.kind == "transformer" and config.sequence == "official" else 0
    return (offset + c).astype(np.int32)


def answer_logits(logits):
    """The logits of the answer: the model's output, or its first scored position in the official sequence."""
    return logits[:, 0] if len(logits.shape) == 3 else logits


def non_embedding_parameters(model: keras.Model) -> int:
    """Trainable parameters outside the token embedding (the paper's count, ~4·10⁵)."""
    return sum(
        int(np.prod(w.shape)) for layer in model.layers if layer.name != "token_embedding"
        for w in layer.trainable_weights
    )
