"""The reference model of the BOLT accelerator."""
from .accelerator import ReferenceAccelerator
from .pages import PlainPages, SealedPages

__all__ = ["ReferenceAccelerator", "SealedPages", "PlainPages"]
