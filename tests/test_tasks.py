import itertools

import numpy as np
import pytest

from repro.tasks import OPERATIONS, build_table, check_operation, split_mask

SIZES_AT_97 = {key: 9409 for key in OPERATIONS} | {"div": 9312, "s5_mul": 14400, "s5_conj": 14400, "s5_xyx": 14400}


@pytest.mark.parametrize("key", OPERATIONS)
def test_every_table_is_complete(key):
    table = build_table(key, 97)
    assert len(table) == SIZES_AT_97[key]
    # Each (a, b) pair appears once, and every answer is an element.
    assert len(set(zip(table.a.tolist(), table.b.tolist()))) == len(table)
    assert table.c.min() >= 0 and table.c.max() < len(table.elements)


def test_thirteen_operations_including_multiplication():
    assert len(OPERATIONS) == 13 and "mul" in OPERATIONS


@pytest.mark.parametrize("key,expected", [
    ("add", lambda x, y: x + y), ("sub", lambda x, y: x - y), ("mul", lambda x, y: x * y),
    ("div", lambda x, y: x * pow(y, -1, 97)), ("sq_sum", lambda x, y: x * x + y * y),
    ("quad", lambda x, y: x * x + x * y + y * y), ("quad_x", lambda x, y: x * x + x * y + y * y + x),
    ("cube_xy", lambda x, y: x**3 + x * y), ("cube_xy2_y", lambda x, y: x**3 + x * y * y + y),
    ("div_odd_else_sub", lambda x, y: x * pow(y, -1, 97) if y % 2 else x - y),
])
def test_modular_answers(key, expected):
    table = build_table(key, 97)
    for a, b, c in list(zip(table.a, table.b, table.c))[::97]:
        assert c == expected(int(a), int(b)) % 97


def test_s5_follows_the_stated_convention_and_is_a_group():
    table = build_table("s5_mul")
    perms = [tuple(int(ch) for ch in e) for e in table.elements]
    product = {(int(a), int(b)): int(c) for a, b, c in zip(table.a, table.b, table.c)}
    for a, b in [(3, 77), (119, 5), (42, 42)]:
        pa, pb = perms[a], perms[b]
        assert perms[product[a, b]] == tuple(pb[pa[i]] for i in range(5))  # (a·b)[i] = b[a[i]]
    identity = perms.index((0, 1, 2, 3, 4))
    assert all(product[identity, b] == b for b in range(120))
    for a, b, c in itertools.islice(itertools.product(range(0, 120, 17), repeat=3), 200):
        assert product[product[a, b], c] == product[a, product[b, c]]


def test_s5_conjugation_and_xyx():
    mul = build_table("s5_mul")
    product = {(int(a), int(b)): int(c) for a, b, c in zip(mul.a, mul.b, mul.c)}
    identity = mul.elements.index("01234")
    inverse = {a: next(b for b in range(120) if product[a, b] == identity) for a in range(120)}
    for key, expected in (("s5_conj", lambda x, y: product[product[x, y], inverse[x]]),
                          ("s5_xyx", lambda x, y: product[product[x, y], x])):
        table = build_table(key)
        for a, b, c in list(zip(table.a, table.b, table.c))[::101]:
            assert c == expected(int(a), int(b))


def test_inverse_needs_a_prime_modulus():
    with pytest.raises(ValueError, match="not prime"):
        check_operation("div", 96)
    with pytest.raises(ValueError, match="not prime"):
        build_table("div_odd_else_sub", 10)
    assert len(build_table("add", 10)) == 100  # no inverse needed


def test_unknown_operation_names_the_choices():
    with pytest.raises(ValueError, match="unknown operation 'pow'.*add"):
        check_operation("pow", 97)


def test_split_is_seeded_sized_and_nested():
    half = split_mask(1000, 0.5, seed=3)
    assert half.sum() == 500
    assert np.array_equal(half, split_mask(1000, 0.5, seed=3))
    assert not np.array_equal(half, split_mask(1000, 0.5, seed=4))
    smaller = split_mask(1000, 0.3, seed=3)
    assert smaller.sum() == 300 and np.all(half[smaller])  # a smaller fraction is a subset


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fractions_outside_the_open_interval(fraction):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_mask(1000, fraction, seed=0)


def test_descents_count_falls_after_a_rise():
    from repro.analysis import descents

    updates = np.geomspace(1, 1e5, 120)
    single = 5 * np.exp(-updates / 1e3) + 0.05
    double = single + 4 * np.exp(-((np.log10(updates) - 3.5) ** 2) / 0.1) * (updates < 1e5)
    rng = np.random.default_rng(0)
    for seed in range(5):  # ±10% noise between neighbouring points: never a second descent
        noise = np.exp(0.1 * np.random.default_rng(seed).normal(size=len(updates)))
        assert descents(single * noise) == 1
        assert descents(double * noise) == 2
    assert descents(np.full(50, 3.0) + 0.01 * rng.normal(size=50)) == 0  # flat: no descent at all
    assert descents([5, 3, 3.3, 2] + [2] * 5) == 1  # a 10% bump is noise, not a second descent

