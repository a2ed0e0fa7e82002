"""The host side of the RTL backend (installed as ``bolt.host``)."""
