"""Log-depth networks for the control: scans over a row of bits, for its decisions over a
bin's slots, and a wide one-hot multiplexer, for the choice of its HBM requests.

A loop that carries "seen so far" from one position to the next is a ripple: n positions
are n logic levels deep, and at 13 or 14 slots that alone would keep the design from
300 MHz. These build the same results as parallel-prefix networks, ``ceil(log2 n)`` OR levels
(two LUT levels on UltraScale+ at these widths). Likewise a choice written as nested
``If``/``Switch`` blocks is a multiplexer per block, one after the other; when the conditions
exclude each other it can be one balanced AND-OR instead.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux

__all__ = ["prefix_or", "lowest_set", "one_hot_select"]


def prefix_or(bits) -> list:
    """``[bits[0], bits[0] | bits[1], ..., bits[0] | ... | bits[-1]]`` for a list of 1-bit
    values, as a Sklansky prefix network: each half is scanned alone, then the lower half's
    total is ORed into every position of the upper half."""
    bits = list(bits)
    if len(bits) <= 1:
        return bits
    lower, upper = prefix_or(bits[:len(bits) // 2]), prefix_or(bits[len(bits) // 2:])
    return lower + [lower[-1] | bit for bit in upper]


def lowest_set(bits):
    """The position of the lowest set bit of ``bits`` (a list of 1-bit values), 0 if none
    is set: the lowest set bit alone (set, with nothing set below it), then each bit of its
    position as an OR of the positions that have it."""
    bits = list(bits)
    below = [Const(0, 1)] + prefix_or(bits)[:-1]
    lowest = [bit & ~seen for bit, seen in zip(bits, below)]
    width = max(1, (len(bits) - 1).bit_length())
    return Cat(*[Cat(*[one for i, one in enumerate(lowest) if i >> w & 1]).any()
                 for w in range(width)])


def one_hot_select(choices):
    """The value of the ``(condition, value)`` pair in ``choices`` whose condition holds, 0 if
    none does, for conditions that never hold together: each value ANDed with its condition,
    then ORed in a balanced tree, ``ceil(log2 n)`` OR levels over n pairs."""
    terms = [Mux(when, value, 0) for when, value in choices
             if not (isinstance(value, int) and value == 0)]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]
