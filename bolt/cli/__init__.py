"""The ``bolt`` command-line tool: one module per command in this package.

Each command's module (``bolt.cli.<name>``) defines ``command`` and is imported only when that
command runs, so ``bolt --help`` stays quick and never loads Amaranth, numba or cocotb.
"""

from __future__ import annotations

import importlib

import click

#: Command name -> module that defines it (as ``command``).
COMMANDS = {
    "attest": "bolt.cli.attest",
    "audit": "bolt.cli.audit",
    "bench": "bolt.cli.bench",
    "bounds": "bolt.cli.bounds",
    "demo": "bolt.cli.demo",
    "faults": "bolt.cli.faults",
    "loadtest": "bolt.cli.loadtest",
    "params": "bolt.cli.params",
    "serve": "bolt.cli.serve",
    "sim": "bolt.cli.sim",
    "speed": "bolt.cli.speed",
    "synth": "bolt.cli.synth",
}


class _LazyGroup(click.Group):
    """A click group that imports a command's module when that command is asked for."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name]).command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """BOLT: an oblivious key-value map on a secure-HBM accelerator."""
