"""The RTL crypto cores alone (issue 3), cocotb on Verilator: AES-128 (pipelined and
iterative), AES-GCM over a page, and the DRBG's U(n) sampler, each against a software oracle
(pycryptodome, :class:`bolt.crypto.Drbg`); plus ``bolt synth --component``.

Builds are cached (:mod:`bolt.sim.verilator`); the instances are kept small so that a cold run
stays within a few minutes on two cores (figures in ``docs/design.md``, "RTL crypto").
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bolt.hdl.pages import PAGE_GCM_LANES
from bolt.params import Params

pytestmark = pytest.mark.rtl

#: Page sizes of two parameter sets (364 and 1092 bytes: 23 and 69 blocks, both with a partial
#: last block) and the 64-byte page of the GCM specification's test case 3.
GCM_PAGES = {
    "N1024-V8": Params(capacity=1024, value_size=8).page_plaintext_bytes,
    "default": Params().page_plaintext_bytes,
    "mcgrew-viega-tc3": 64,
}

#: Sampler outputs: the raw word stream (2^32), a small power of two, small non-powers of two,
#: a non-power of two just above a power of two (mask 1023 rejects about half the words) and
#: the bins of the default parameters (a power of two).
SAMPLER_NS = (2**32, 2, 3, 1000, Params().bins)


class SamplerBank(wiring.Component):
    """One :class:`~bolt.hdl.sampler.UniformSampler` per ``n``, sharing ``key`` and
    ``restart``; output ``o<i>`` belongs to ``ns[i]`` (one Verilator build for every ``n``)."""

    def __init__(self, ns):
        from amaranth.lib import stream

        self._ns = tuple(ns)
        super().__init__({"key": In(128), "restart": In(1),
                          **{f"o{i}": Out(stream.Signature(range(n)))
                             for i, n in enumerate(self._ns)}})

    def elaborate(self, platform):
        from bolt.hdl.sampler import UniformSampler

        m = Module()
        for i, n in enumerate(self._ns):
            sampler = UniformSampler(n)
            m.submodules[f"sampler{i}"] = sampler
            m.d.comb += [sampler.key.eq(self.key), sampler.restart.eq(self.restart)]
            wiring.connect(m, sampler.o, wiring.flipped(getattr(self, f"o{i}")))
        return m


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "iterative"])
def test_aes(pipelined):
    """FIPS-197 example, random pairs against pycryptodome with stalls, latency/throughput."""
    from bolt.hdl.aes import Aes128
    from bolt.sim.verilator import build, run

    handle = build(Aes128(pipelined=pipelined),
                   name="aes128_pipelined" if pipelined else "aes128_iterative")
    tests = run(handle, "bolt.sim.tb_aes", env={
        "AES_PIPELINED": int(pipelined), "AES_KEYS": 12, "AES_BLOCKS_PER_KEY": 8,
        "AES_STALL": 0.3, "AES_SEED": 3})
    assert tests == 3


def test_profile_guided_build(tmp_path):
    """A profile-guided build (``build(..., training=...)``, what ``bolt sim`` simulates on):
    the training run leaves its counts, the fast path is compiled again with them, and the
    build simulates correctly; a failing training run leaves a build made without counts."""
    from bolt.hdl.aes import Aes128
    from bolt.sim.verilator import build, run

    env = {"AES_PIPELINED": 0, "AES_KEYS": 2, "AES_BLOCKS_PER_KEY": 2, "AES_SEED": 4}
    trained = []

    def train(handle):
        trained.append(run(handle, "bolt.sim.tb_aes", env=env))

    handle = build(Aes128(pipelined=False), name="aes128_iterative", cache_dir=tmp_path / "a",
                   long_runs=True, training=train)
    assert trained == [3]
    assert list(handle.directory.glob("*.gcda"))
    assert "-fprofile-use" in (handle.directory / "build.log").read_text()
    assert run(handle, "bolt.sim.tb_aes", env=env) == 3

    def fail(handle):
        raise RuntimeError("no training today")

    handle = build(Aes128(pipelined=False), name="aes128_iterative", cache_dir=tmp_path / "b",
                   long_runs=True, training=fail)
    log = (handle.directory / "build.log").read_text()
    assert "the training run failed" in log and "-fprofile-use" not in log
    assert run(handle, "bolt.sim.tb_aes", env=env) == 3


@pytest.mark.parametrize("page, lanes", [("N1024-V8", PAGE_GCM_LANES),
                                         ("default", PAGE_GCM_LANES),
                                         ("mcgrew-viega-tc3", 1),
                                         ("mcgrew-viega-tc3", PAGE_GCM_LANES)])
def test_gcm(page, lanes):
    """Encrypt/decrypt against pycryptodome with stalls, every bit flip detected, cycles per
    page; the 64-byte build also checks the published test vector. The page sizes take the
    page engines' lanes (one group of them short: 23 and 69 blocks), the vector one lane too
    (the channel's GCMs)."""
    from bolt.hdl.gcm import Gcm
    from bolt.sim.verilator import build, run

    size = GCM_PAGES[page]
    gcm = Gcm(plaintext_bytes=size, lanes=lanes)
    handle = build(gcm, name=f"bolt_gcm_{size}_{lanes}")
    blocks = gcm.blocks
    tests = run(handle, "bolt.sim.tb_gcm", env={
        "GCM_BYTES": size, "GCM_CYCLES": gcm.cycles_per_page, "GCM_LANES": lanes,
        "GCM_KEYS": 2, "GCM_PAGES_PER_KEY": 6,
        # Hundreds of single-bit flips (fewer for long pages; a page is blocks + 15 cycles).
        "GCM_FLIPS": min(500, max(200, 12000 // blocks)), "GCM_STALL": 0.3, "GCM_SEED": size})
    assert tests == (4 if size == 64 else 3)


def test_sampler():
    """DRBG word stream and U(n) samples equal :class:`bolt.crypto.Drbg`'s for several keys."""
    from bolt.sim.verilator import build, run

    handle = build(SamplerBank(SAMPLER_NS), name="bolt_sampler_bank")
    tests = run(handle, "bolt.sim.tb_sampler", env={
        "SAMPLER_NS": ",".join(map(str, SAMPLER_NS)), "SAMPLER_KEYS": 4,
        "SAMPLER_SAMPLES": 40, "SAMPLER_STALL": 0.3, "SAMPLER_SEED": 5})
    assert tests == 2


def test_synth_component(tmp_path, monkeypatch):
    """``bolt synth --component host-bridge`` runs Yosys synth_xilinx for UltraScale+ on the
    host AXI bridge: LUTs and flip-flops (at least its three 48-bit address registers, less the
    six low bits a 64-byte beat address keeps at zero) against the U55C, and its longest logic
    path in LUT levels."""
    import re
    import tempfile

    from click.testing import CliRunner

    from bolt.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    runner = CliRunner()
    help_text = runner.invoke(main, ["synth", "--help"])
    assert help_text.exit_code == 0, help_text.output
    for choice in ("accelerator", "sealed", "pages", "gcm", "aes-iterative", "sampler"):
        assert choice in help_text.output
    result = runner.invoke(main, ["synth", "--component", "host-bridge", "-N", "1024"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()
            if line.split()[:1] in (["total"], ["U55C"])}
    luts, flops = (int(rows["total"][i].replace(",", "")) for i in range(2))
    assert luts > 50 and 3 * (48 - 6) <= flops < 1000, result.output
    assert rows["U55C"][:2] == ["1,303,680", "2,607,360"]
    inside = re.search(r"longest logic path inside one module: (\d+) LUT levels", result.output)
    across = re.search(r"longest logic path across modules: (\d+) LUT levels", result.output)
    assert inside and across, result.output
    assert 1 <= int(inside.group(1)) <= int(across.group(1)) <= 20, result.output
    bad = runner.invoke(main, ["synth", "--component", "des"])
    assert bad.exit_code != 0 and "des" in bad.output


def test_synth_maps_the_flush(tmp_path, monkeypatch):
    """``bolt synth --component flush`` at N = 2^20 maps the flush to its figures: ABC9 (in the
    WebAssembly Yosys) once stopped without a message on its map output, and the whole
    design's synthesis with it."""
    import tempfile

    from click.testing import CliRunner

    from bolt.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(main, ["synth", "--component", "flush", "-N", "1048576"])
    assert result.exit_code == 0, result.output
    total = next(line.split() for line in result.output.splitlines()
                 if line.split()[:1] == ["total"])
    # At least the held positions and which slots are filled: 14 slots at 2^20.
    assert int(total[2].replace(",", "")) >= 14, result.output


def test_synth_alone_counts_one_module_its_submodules_black_boxes(tmp_path, monkeypatch):
    """``xilinx_synth(..., alone=...)`` (``bolt synth --component core``) maps one module of
    the hierarchy, what it instantiates left as black boxes: its own 8 flip-flops, not its
    submodule's 32, and no other module."""
    import tempfile

    from amaranth.hdl import Signal

    from bolt.hdl.report import xilinx_synth

    class Inner(wiring.Component):
        def __init__(self):
            super().__init__({"count": Out(32)})

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.count.eq(self.count + 1)
            return m

    class Middle(wiring.Component):
        def __init__(self):
            super().__init__({"o": Out(8)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.inner = inner = Inner()
            held = Signal(8)
            m.d.sync += held.eq(held ^ inner.count[:8] ^ inner.count[24:])
            m.d.comb += self.o.eq(held)
            return m

    class Outer(wiring.Component):
        def __init__(self):
            super().__init__({"o": Out(8)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.middle = middle = Middle()
            m.d.sync += self.o.eq(middle.o + 1)
            return m

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    synthesis = xilinx_synth(Outer(), "outer", alone="outer.middle")
    modules = synthesis.modules
    assert list(modules) == ["outer.middle"]
    middle = modules["outer.middle"]
    assert middle.resources["FF"] == 8 and middle.submodules == ()
    assert 1 <= middle.path.luts <= 2


def test_synth_path_runs_across_modules(tmp_path, monkeypatch):
    """A combinational unit between two of its parent's registers: the design's longest path
    runs from one register through the parent's logic, the unit and the parent's logic again
    to the other, longer than the longest inside either module."""
    import tempfile

    from amaranth.hdl import Cat, Signal

    from bolt.hdl.report import xilinx_synth

    class Mix(wiring.Component):
        """Combinational: each output bit a function of all 24 input bits."""

        def __init__(self):
            super().__init__({"i": In(24), "o": Out(8)})

        def elaborate(self, platform):
            m = Module()
            for bit in range(8):
                m.d.comb += self.o[bit].eq(self.i.rotate_left(bit).xor()
                                           ^ (self.i[bit:bit + 12] == 0x5a5))
            return m

    class Outer(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(24), "o": Out(8)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.mix = mix = Mix()
            held, folded = Signal(24), Signal(8)
            m.d.sync += held.eq(self.a)
            m.d.comb += mix.i.eq(Cat(held[:12] + held[12:], held[:12] ^ held[12:]))
            m.d.comb += folded.eq(mix.o.rotate_left(1) * (mix.o | 1))
            m.d.sync += self.o.eq(folded)
            return m

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    synthesis = xilinx_synth(Outer(), "outer")
    assert set(synthesis.modules) == {"outer", "outer.mix"}
    inside = max(module.path.luts for module in synthesis.modules.values())
    outer, mix = synthesis.modules["outer"].path, synthesis.modules["outer.mix"].path
    assert outer.luts >= 1 and mix.luts >= 2
    assert synthesis.path.luts >= max(inside + 1, mix.luts + 2), synthesis.path
