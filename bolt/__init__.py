"""BOLT: an oblivious key-value map on a secure-HBM accelerator."""
from .params import Params
from .errors import *  # noqa: F403
