"""cocotb testbenches and the Verilator build helper (installed as ``bolt.sim``)."""
