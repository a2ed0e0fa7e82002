"""Options and output helpers shared by the ``bolt`` commands."""

from __future__ import annotations

import click

from ..params import PLACEMENTS, TWO_CHOICE, Params


def params_options(function=None, *, capacity: int | None = None):
    """The parameter options of algorithm §1, shared by every command that builds a map.

    ``capacity`` overrides the default N (``@params_options(capacity=4096)``), for commands
    whose cost grows with N.
    """
    if function is None:
        return lambda f: params_options(f, capacity=capacity)
    defaults = Params()
    options = [
        click.option("--capacity", "-N", type=int, default=capacity or defaults.capacity,
                     show_default=True, help="N, the most items the map may hold."),
        click.option("--key-size", type=int, default=defaults.key_size, show_default=True,
                     help="Key bytes."),
        click.option("--value-size", "-V", type=int, default=defaults.value_size,
                     show_default=True, help="V, the most value bytes."),
        click.option("--load", "-c", type=int, default=defaults.load, show_default=True,
                     help="c, average items per bin."),
        click.option("--hbm-fraction", "-a", type=float, default=defaults.hbm_fraction,
                     show_default=True, help="α, fraction of bins in HBM."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def placement_options(function):
    """``--placement`` and ``--pool-size`` (algorithm §13), for commands that run the model
    or its simulations (the RTL has the two-choice placement only)."""
    options = [
        click.option("--placement", type=click.Choice(PLACEMENTS), default=TWO_CHOICE,
                     show_default=True, help="Two-choice re-placement, or the trusted pool."),
        click.option("--pool-size", "-P", type=int, default=None,
                     help="P, the pool's items (--placement pool; default M)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def make_params(capacity, key_size=None, value_size=None, load=None, hbm_fraction=None,
                **placement) -> Params:
    """:class:`Params` from command options (None: the default), a usage error if invalid."""
    given = dict(capacity=capacity, key_size=key_size, value_size=value_size, load=load,
                 hbm_fraction=hbm_fraction, **placement)
    try:
        return Params(**{name: value for name, value in given.items() if value is not None})
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error)) from error


def print_table(rows, headers=None) -> None:
    rows = [[str(cell) for cell in row] for row in rows]
    if headers:
        rows.insert(0, list(headers))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        click.echo("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                             for i, (cell, width) in enumerate(zip(row, widths))).rstrip())
        if headers and n == 0:
            click.echo("  ".join("-" * width for width in widths))

def parse_capacities(text: str) -> list[int]:
    """``"10-20"`` (exponents of 2), ``"1024,4096"`` or ``"2^10,2^12"``."""
    text = text.strip()
    if "-" in text and "," not in text:
        lo, hi = (int(part) for part in text.split("-"))
        return [1 << e for e in range(lo, hi + 1)]
    out = []
    for part in text.split(","):
        part = part.strip()
        out.append(1 << int(part[2:]) if part.startswith("2^") else int(part))
    return out



def parse_floats(text: str) -> list[float]:
    return [float(v) for v in str(text).split(",") if v.strip()]


def parse_int(v: str) -> int:
    """``1048576``, ``2^20`` or ``1e8``."""
    if v.startswith("2^"):
        return 1 << int(v[2:])
    return int(float(v)) if "e" in v.lower() else int(v, 0)


def parse_ints(text: str) -> list[int]:
    return [parse_int(v) for v in (v.strip() for v in str(text).split(",")) if v]
