"""The paper's binary operation tables (PAPER.md §1) and their train/validation split.

Every element is an abstract symbol: the model only ever sees its index in
`Table.elements`. Modular elements are written as their residues ("0".."96");
S5 elements as one-line permutations ("01234" is the identity).

S5 composition convention (the official code's): with permutations as arrays,
``a · b = b[a]``, i.e. ``(a · b)[i] = b[a[i]]``: apply a first, then b.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

OPERATOR_SYMBOL = "∘"
EQUALS_SYMBOL = "="


@dataclass(frozen=True)
class Operation:
    key: str
    formula: str  # how figures and reports name it
    group: str  # "modular" or "s5"
    needs_inverse: bool
    symmetric: bool  # a ∘ b == b ∘ a for all pairs (paper §4, Figure 2 right)


@dataclass(frozen=True)
class Table:
    """A complete operation table: every equation a ∘ b = c, as element indices."""

    operation: Operation
    modulus: int | None  # None for S5
    elements: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray

    def __len__(self) -> int:
        return len(self.c)


OPERATIONS: dict[str, Operation] = {
    op.key: op
    for op in [
        Operation("add", "x + y mod p", "modular", False, True),
        Operation("sub", "x − y mod p", "modular", False, False),
        Operation("mul", "x · y mod p", "modular", False, True),
        Operation("div", "x / y mod p", "modular", True, False),
        Operation("div_odd_else_sub", "x / y if y odd, else x − y (mod p)", "modular", True, False),
        Operation("sq_sum", "x² + y² mod p", "modular", False, True),
        Operation("quad", "x² + xy + y² mod p", "modular", False, True),
        Operation("quad_x", "x² + xy + y² + x mod p", "modular", False, False),
        Operation("cube_xy", "x³ + xy mod p", "modular", False, False),
        Operation("cube_xy2_y", "x³ + xy² + y mod p", "modular", False, False),
        Operation("s5_mul", "x · y in S5", "s5", False, False),
        Operation("s5_conj", "x · y · x⁻¹ in S5", "s5", False, False),
        Operation("s5_xyx", "x · y · x in S5", "s5", False, False),
    ]
}


def _modular_inverse(y: np.ndarray, p: int) -> np.ndarray:
    return np.array([pow(int(v), -1, p) for v in y], dtype=np.int64)


_MODULAR: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "add": lambda x, y, p: x + y,
    "sub": lambda x, y, p: x - y,
    "mul": lambda x, y, p: x * y,
    "div": lambda x, y, p: x * _modular_inverse(y, p),
    "div_odd_else_sub": lambda x, y, p: np.where(
        y % 2 == 1, x * _modular_inverse(np.where(y % 2 == 1, y, 1), p), x - y
    ),
    "sq_sum": lambda x, y, p: x**2 + y**2,
    "quad": lambda x, y, p: x**2 + x * y + y**2,
    "quad_x": lambda x, y, p: x**2 + x * y + y**2 + x,
    "cube_xy": lambda x, y, p: x**3 + x * y,
    "cube_xy2_y": lambda x, y, p: x**3 + x * y**2 + y,
}


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of a and b are permutations; returns a · b = b[a] row by row."""
    return np.take_along_axis(b, a, axis=1)


def _invert(a: np.ndarray) -> np.ndarray:
    return np.argsort(a, axis=1)


_S5: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "s5_mul": _compose,
    "s5_conj": lambda a, b: _compose(_compose(a, b), _invert(a)),
    "s5_xyx": lambda a, b: _compose(_compose(a, b), a),
}


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


# The tables that are a cyclic group's (repro/progress.py): each operation's answer direction, s = i + SIGN·j
# for operands labelled i and j. x · y and x / y only mod a prime, after relabelling by discrete logarithms.
CYCLIC = {"add": 1, "sub": -1, "mul": 1, "div": -1}


def cyclic_group(key: str, modulus: int | None) -> bool:
    return key in CYCLIC and (key in ("add", "sub") or modulus is not None and is_prime(modulus))


def check_operation(key: str, modulus: int) -> Operation:
    """The operation named `key`, or a ValueError that says how to fix the request."""
    if key not in OPERATIONS:
        raise ValueError(
            f"unknown operation {key!r}; choose one of: {', '.join(OPERATIONS)}"
        )
    operation = OPERATIONS[key]
    if operation.group == "modular":
        if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 2:
            raise ValueError(f"modulus must be an integer ≥ 2, got {modulus!r}")
        if operation.needs_inverse and not is_prime(modulus):
            raise ValueError(
                f"operation {key!r} divides, which needs every divisor to have an inverse "
                f"mod p: modulus {modulus} is not prime; use a prime such as 97"
            )
    return operation


def table_size(key: str, modulus: int) -> int:
    """The number of equations `build_table(key, modulus)` makes, without making them."""
    if OPERATIONS[key].group == "s5":
        return 120 * 120
    return modulus * (modulus - 1) if key == "div" else modulus * modulus


def build_table(key: str, modulus: int = 97) -> Table:
    """The complete table of operation `key` (9,409 / 9,312 / 14,400 equations at p = 97)."""
    operation = check_operation(key, modulus)
    if operation.group == "s5":
        permutations = np.array(list(itertools.permutations(range(5))), dtype=np.int64)
        size = len(permutations)
        a, b = (g.ravel() for g in np.meshgrid(np.arange(size), np.arange(size), indexing="ij"))
        products = _S5[key](permutations[a], permutations[b])
        # Permutations are in lexicographic order, so each one's index is its rank.
        index = {tuple(row): i for i, row in enumerate(permutations.tolist())}
        c = np.array([index[tuple(row)] for row in products.tolist()], dtype=np.int64)
        elements = tuple("".join(map(str, row)) for row in permutations.tolist())
        return Table(operation, None, elements, a, b, c)

    x, y = (g.ravel() for g in np.meshgrid(np.arange(modulus), np.arange(modulus), indexing="ij"))
    if key == "div":  # division is undefined for y = 0; every other table is complete
        keep = y != 0
        x, y = x[keep], y[keep]
    c = _MODULAR[key](x, y, modulus) % modulus
    elements = tuple(str(i) for i in range(modulus))
    return Table(operation, modulus, elements, x, y, c)


def check_fraction(train_fraction: float) -> None:
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction!r}")


def split_mask(num_equations: int, train_fraction: float, seed: int) -> np.ndarray:
    """A boolean mask, True for training equations.

    The order comes from one seeded permutation, so for the same seed a smaller
    fraction's training set is a subset of a larger one's.
    """
    check_fraction(train_fraction)
    num_train = int(round(train_fraction * num_equations))
    if not 0 < num_train < num_equations:
        raise ValueError(
            f"train_fraction {train_fraction} of {num_equations} equations leaves an empty "
            "training or validation set; choose a fraction further from 0 and 1"
        )
    order = np.random.default_rng(seed).permutation(num_equations)
    mask = np.zeros(num_equations, dtype=bool)
    mask[order[:num_train]] = True
    return mask
