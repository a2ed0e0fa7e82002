"""The reference model of the BOLT accelerator."""
from .accelerator import HBM, HOST, PENDING, Accelerator
from .pages import PlainPages, SealedPages

__all__ = ["Accelerator", "SealedPages", "PlainPages", "HBM", "PENDING", "HOST"]
