"""The BOLT accelerator in Amaranth 0.5 (installed as ``bolt.hdl``)."""
