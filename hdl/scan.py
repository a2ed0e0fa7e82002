"""Log-depth scans over a row of bits, for the control's decisions over a bin's slots.

A loop that carries "seen so far" from one position to the next is a ripple: n positions
are n logic levels deep, and at 13 or 14 slots that alone would keep the design from
300 MHz. These build the same results as parallel-prefix networks, ``ceil(log2 n)`` OR levels
(two LUT levels on UltraScale+ at these widths).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const

__all__ = ["prefix_or", "lowest_set"]


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
