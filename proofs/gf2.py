"""Linear algebra over GF(2) for the CRC arguments: vectors are Python ints, one bit per coordinate.

A CRC over inputs of one length is affine over GF(2), so it is a bit matrix plus a constant:
its column for input bit i is ``f(e_i) ^ f(0)``, computed from the function itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def columns(f: Callable[[int], int], bits: int) -> list[int]:
    """The matrix of the affine ``f`` over ``bits`` input bits: column i is f(e_i) ^ f(0)."""
    zero = f(0)
    return [f(1 << i) ^ zero for i in range(bits)]


def reduce(vectors: Sequence[int]) -> tuple[int, int | None]:
    """Gaussian elimination: (the rank of ``vectors``, a nonzero bit mask of indices whose vectors
    XOR to zero, or None if they are independent)."""
    pivots: dict[int, tuple[int, int]] = {}  # leading bit -> (vector, which inputs it combines)
    dependency = None
    for i, v in enumerate(vectors):
        mask = 1 << i
        while v and (v.bit_length() - 1) in pivots:
            pivot, combined = pivots[v.bit_length() - 1]
            v, mask = v ^ pivot, mask ^ combined
        if v:
            pivots[v.bit_length() - 1] = (v, mask)
        elif dependency is None:
            dependency = mask
    return len(pivots), dependency


def rank(vectors: Sequence[int]) -> int:
    return reduce(vectors)[0]
