"""Progress measures (Nanda et al. 2023; PAPER.md §8): how a run on a cyclic group's table groks.

A network that groks x + y mod p ends up computing its logits as
Σ_k α_k cos(w_k(a + b − c)) over a few key frequencies w_k = 2πk/p. So, for
each answer c, the logits as a function of the operands live in the span of
{1, cos w_k s, sin w_k s} with s = a + b. Every measure here is a function
of the logits over the whole table (and of the first layer's weights), so it
applies to the MLP and the transformer alike:

- the **spectrum**: the share of the logits' energy along the operation's
  direction s at each frequency k = 1 … ⌊n/2⌋ (`spectrum`);
- the **key frequencies**, chosen at the end of the run by `KEY_RULE`, and
  their share of the energy;
- the **restricted loss**: the loss over the whole table when only the key
  frequencies' components along s (and each answer's constant) are kept;
- the **excluded loss**: the training loss when exactly those components are
  removed;
- the **Gini coefficient** of the first layer's Fourier norms: near 0 when
  every frequency is used alike, near 1 when a few carry it all;
- the weight norm, which training already logs.

Tables (`cyclic`): x + y and x − y mod p are Z_p with s = a ± b. x · y and
x / y mod p (p prime) are Z_{p−1} once every non-zero symbol is relabelled
by its discrete logarithm to the smallest primitive root: multiplication
becomes addition and division subtraction. The equations with a zero operand
(x = 0, and y = 0 for x · y) are constant and stay outside the analysis.

The weights at every logged update come from a deterministic replay of the
run (repro/replay.py, the `progress` stage). This module computes from
weights and logits alone, and owns progress/<run>/: measures.csv (one row per
logged update) and summary.json (key frequencies, phases, the replay's check).

Logits are taken in float64 here: float32 round-off (about 1e-7) would show
as spikes in losses near zero (Nanda et al.'s note).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from repro import files, history_csv
from repro.config import ConfigError
from repro.tasks import CYCLIC, is_prime

FOLDER = Path("progress")  # progress/<run>/: MEASURES and SUMMARY, committed like the histories
MEASURES, SUMMARY = "measures.csv", "summary.json"

NULL_SHUFFLES, NULL_SEED = 100, 0
KEY_FRACTION = 0.1
KEY_RULE = (
    f"Key frequencies, chosen on the logits at the last logged update: every frequency whose share of the "
    f"logits' energy is above chance (the 99th percentile of the largest share over {NULL_SHUFFLES} shuffles "
    f"of the table's equations) and at least {KEY_FRACTION:g} of the largest share.")
PHASE_RULE = (
    "Phases: memorization from the start until training accuracy first reaches 99%; circuit formation from "
    "there until the validation loss first falls below chance, ln(classes) (the model begins to answer unseen "
    "equations better than guessing); cleanup from there until validation accuracy first reaches 99%. A "
    "phase whose boundary is never reached has no end.")


@dataclass(frozen=True)
class Cyclic:
    """A table's equations seen as a cyclic group's: labels i, j, c in Z_n and the direction s = i + sign·j."""

    order: int  # n
    sign: int
    rows: np.ndarray  # indices of the analysed equations in the table
    s: np.ndarray  # s of each analysed equation
    by_s: np.ndarray  # the analysed equations ordered by s (n of each), for `_along`
    answers: np.ndarray  # the label of each analysed equation's answer
    elements: np.ndarray  # the token of the element labelled l, for l = 0 … n − 1
    labels: str  # how symbols became labels


def primitive_root(p: int) -> int:
    """The smallest generator of the multiplicative group mod the prime p."""
    factors = [q for q in range(2, p) if (p - 1) % q == 0 and is_prime(q)]
    return next(g for g in range(2, p) if all(pow(g, (p - 1) // q, p) != 1 for q in factors))


def cyclic(operation: str, modulus: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Cyclic:
    """The cyclic group behind `operation`'s table (equations a ∘ b = c as tokens, token = residue)."""
    if operation not in CYCLIC:
        raise ConfigError(f"progress measures need a cyclic group's table ({', '.join(CYCLIC)}); "
                          f"{operation!r} is not one")
    if operation in ("add", "sub"):
        order, label, elements, kept = modulus, np.arange(modulus), np.arange(modulus), np.ones(len(a), bool)
        how = f"residues mod {modulus}"
    else:
        if not is_prime(modulus):
            raise ConfigError(f"x · y and x / y are cyclic groups only mod a prime; {modulus} is not prime")
        g, order = primitive_root(modulus), modulus - 1
        elements = np.array([pow(g, k, modulus) for k in range(order)])
        label = np.full(modulus, -1)
        label[elements] = np.arange(order)
        kept = (a != 0) & (b != 0)
        how = f"discrete logarithms base {g} mod {modulus} (symbol 0 left out)"
    rows = np.flatnonzero(kept)
    i, j, answers = label[a[rows]], label[b[rows]], label[c[rows]]
    if len(rows) != order * order or len(set(zip(i.tolist(), j.tolist()))) != len(rows):
        raise ValueError(f"the {operation} table does not cover Z_{order} × Z_{order} once")
    s = (i + CYCLIC[operation] * j) % order
    return Cyclic(order, CYCLIC[operation], rows, s, np.argsort(s, kind="stable"), answers, elements, how)


# --- the measures ----------------------------------------------------------------------------------

def _along(logits: np.ndarray, group: Cyclic) -> np.ndarray:
    """(n, classes): each class's mean logit over the n equations of each s, the logits' part along s."""
    return logits[group.by_s].reshape(group.order, group.order, -1).mean(axis=1)


def spectrum(logits: np.ndarray, group: Cyclic) -> np.ndarray:
    """Share of the logits' energy at each frequency k = 1 … ⌊n/2⌋ along s, (n//2,).

    `logits` (analysed equations, classes). The energy is the sum of squares over the table of the logits
    centred twice: per equation over the classes (softmax ignores a shift that every class shares) and per
    class over the table (the constant is no frequency). Frequency k's part along s, over the table, has
    energy 2|F_k|² (|F_k|² at k = n/2), F the DFT over s of `_along`.
    """
    centred = logits - logits.mean(axis=1, keepdims=True)
    centred = centred - centred.mean(axis=0, keepdims=True)
    total = float(np.sum(centred ** 2))
    transform = np.fft.rfft(_along(centred, group), axis=0)[1:]
    energy = 2 * np.sum(np.abs(transform) ** 2, axis=1)
    if group.order % 2 == 0:
        energy[-1] /= 2
    return energy / total if total > 0 else np.zeros_like(energy)


def _components(logits: np.ndarray, group: Cyclic, keep: list[int], constant: bool) -> np.ndarray:
    """The logits' components along s at frequencies `keep` (and each class's constant), per equation."""
    transform = np.fft.rfft(_along(logits, group), axis=0)
    mask = np.zeros(len(transform), bool)
    mask[list(keep)] = True
    mask[0] = constant
    return np.fft.irfft(transform * mask[:, None], n=group.order, axis=0)[group.s]


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy, in float64."""
    top = logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_sum - logits[np.arange(len(labels)), labels]))


def restricted_loss(logits: np.ndarray, labels: np.ndarray, group: Cyclic, key: list[int]) -> float:
    """Loss over the whole table of the logits' key-frequency components along s and each class's constant."""
    return cross_entropy(_components(logits, group, key, constant=True), labels)


def excluded_loss(logits: np.ndarray, labels: np.ndarray, train: np.ndarray, group: Cyclic, key: list[int]) -> float:
    """Loss on the training equations of the logits without their key-frequency components along s."""
    kept = logits - _components(logits, group, key, constant=False)
    return cross_entropy(kept[train], labels[train])


def gini(values: np.ndarray) -> float:
    """The Gini coefficient of non-negative `values`: 0 when all are equal, → 1 when one holds everything."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    m = len(x)
    return float(np.sum((2 * np.arange(1, m + 1) - m - 1) * x) / (m * x.sum())) if x.sum() > 0 else 0.0


def fourier_norms(rows: np.ndarray) -> np.ndarray:
    """(n//2,): the norm of each frequency k = 1 … ⌊n/2⌋ of rows (n, d) indexed by label."""
    transform = np.fft.rfft(rows, axis=0)[1:]
    return np.sqrt(np.sum(np.abs(transform) ** 2, axis=1))


def key_frequencies(logits: np.ndarray, group: Cyclic) -> tuple[list[int], float, np.ndarray]:
    """KEY_RULE: (the key frequencies, chance, the shares they were chosen from)."""
    shares = spectrum(logits, group)
    rng = np.random.default_rng(NULL_SEED)
    largest = [spectrum(logits[rng.permutation(len(logits))], group).max() for _ in range(NULL_SHUFFLES)]
    chance = float(np.quantile(largest, 0.99))
    key = [int(k) + 1 for k in np.flatnonzero((shares > chance) & (shares >= KEY_FRACTION * shares.max()))]
    return key, chance, shares


def phases(frame: pd.DataFrame, classes: int) -> dict[str, int | None]:
    """PHASE_RULE's boundaries: the updates that end memorization, circuit formation and cleanup (or None)."""

    def first(mask: pd.Series, after: int | None) -> int | None:
        """The first logged update at or after `after` where `mask` holds; None if none, or if `after` is."""
        if after is None:
            return None
        found = frame.loc[mask & (frame["update"] >= after), "update"]
        return int(found.iloc[0]) if len(found) else None

    memorized = first(frame["train_accuracy"] >= history_csv.THRESHOLD, 0)
    circuit = first(frame["val_loss"] < np.log(classes), memorized)
    grokked = first(frame["val_accuracy"] >= history_csv.THRESHOLD, circuit)
    return {"memorization_ends": memorized, "circuit_formation_ends": circuit, "cleanup_ends": grokked}


# --- every logged update of a run (its weights and logits from repro/replay.py) -------------------------

FIRST_LAYERS = ("token_embedding", "hidden")  # models.py's first layer of the transformer, of the MLP


def first_layer(kernel: np.ndarray, kind: str, group: Cyclic) -> np.ndarray:
    """The first layer's rows for the elements in label order, (n, d): the token embedding (transformer), or
    both operands' rows of the hidden layer's kernel side by side (MLP)."""
    if kind == "transformer":
        return kernel[group.elements]
    count = kernel.shape[0] // 2
    return np.concatenate([kernel[group.elements], kernel[count + group.elements]], axis=1)


@dataclass
class Measured:
    frame: pd.DataFrame  # one row per logged update: the history's columns, the measures, then the spectrum
    summary: dict


def measure_points(history: pd.DataFrame, logits: list[np.ndarray], first_layers: list[np.ndarray], kind: str,
                   dataset) -> Measured:
    """The measures at every logged update: `logits` over the whole table and the first layer's kernel at each
    of `history`'s rows; key frequencies from the last."""
    group = cyclic(dataset.manifest["operation"], dataset.manifest["modulus"], dataset.a, dataset.b, dataset.c)
    labels, train = dataset.c[group.rows], dataset.train[group.rows]
    logits = [z[group.rows].astype(np.float64) for z in logits]
    key, chance, final = key_frequencies(logits[-1], group)
    rows = []
    for z, kernel in zip(logits, first_layers):
        shares = spectrum(z, group)
        rows.append([restricted_loss(z, labels, group, key), excluded_loss(z, labels, train, group, key),
                     cross_entropy(z, labels), float(shares[[k - 1 for k in key]].sum()),
                     gini(fourier_norms(first_layer(kernel.astype(np.float64), kind, group))), *shares])
    names = ["restricted_loss", "excluded_loss", "table_loss", "key_share", "gini",
             *(f"share_{k}" for k in range(1, group.order // 2 + 1))]
    frame = pd.concat([history.reset_index(drop=True), pd.DataFrame(rows, columns=names)], axis=1)
    summary = {
        "operation": dataset.manifest["operation"], "model": kind, "group": f"Z_{group.order}",
        "labels": group.labels, "equations_analysed": int(len(group.rows)),
        "key_frequencies": key, "key_share": round(float(final[[k - 1 for k in key]].sum()), 6),
        "largest_shares": {str(k + 1): round(float(final[k]), 6) for k in np.argsort(-final)[:8]},
        "chance_99": round(chance, 6), "key_rule": KEY_RULE, "classes": int(logits[-1].shape[1]),
        "phases": phases(frame, logits[-1].shape[1]), "phase_rule": PHASE_RULE,
    }
    return Measured(frame, summary)


def write(measured: Measured, out_dir: Path) -> None:
    with files.atomic_directory(out_dir) as tmp:
        (tmp / MEASURES).write_text(history_csv.text(measured.frame.to_numpy(dtype=np.float64),
                                                      list(measured.frame.columns)), encoding="utf-8")
        files.write_json(tmp / SUMMARY, measured.summary)


def read(folder: Path, name: str) -> tuple[pd.DataFrame, dict]:
    """A run's committed measures and summary, checked; a clear error naming the command that remakes them."""
    import json

    redo = f"remake them with `repro progress {name}`"
    try:
        summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
        frame = pd.read_csv(folder / MEASURES)
    except FileNotFoundError:
        raise ConfigError(f"no progress measures for {name} in {folder}; {redo}") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise ConfigError(f"{folder} is damaged ({type(error).__name__}: {error}); {redo}") from None
    needed = {"update", "train_loss", "val_loss", "val_accuracy", "train_accuracy", "weight_norm",
              "restricted_loss", "excluded_loss", "gini", "key_share"}
    if not needed <= set(frame.columns) or frame[sorted(needed)].isna().any().any() or "phases" not in summary:
        raise ConfigError(f"{folder} is damaged (columns or summary incomplete); {redo}")
    return frame, summary
