"""The reference model of the BOLT accelerator."""
from .accelerator import MODEL_VERSION, ReferenceAccelerator
from .pages import PlainPages, SealedPages

__all__ = ["ReferenceAccelerator", "MODEL_VERSION", "SealedPages", "PlainPages"]
