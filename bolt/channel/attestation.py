"""Attestation: a report binding the accelerator's device key to a measurement of its design.

A report is ``magic (8) ‖ device X25519 public key (32) ‖ measurement (32) ‖ Ed25519 signature
(64)`` over the first three fields, made by the vendor key. The measurement is SHA-256 over
the kind of design (``reference`` or ``rtl``), its :class:`~bolt.params.Params` and its code: the
model's version for the reference model, the generated Verilog for the RTL. A client verifies the
signature with the vendor's public key and compares the measurement with the one it expects
(:func:`reference_measurement`, :func:`rtl_measurement`, or one a user pins).

The vendor key here is a TEST FIXTURE shipped with the project (:data:`TEST_VENDOR_KEY_SEED`):
anyone can sign with it. A real card's root of trust would hold its own key and certify the
device key; replace :func:`fixture_vendor_key` and :func:`fixture_vendor_public_key` for that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

from ..errors import AttestationError
from ..params import Params

__all__ = ["Report", "REPORT_BYTES", "TEST_VENDOR_KEY_SEED", "fixture_vendor_key",
           "fixture_vendor_public_key", "measurement", "reference_measurement", "rtl_measurement"]

_MAGIC = b"BOLTATT1"
_KEY_BYTES, _MEASUREMENT_BYTES, _SIGNATURE_BYTES = 32, 32, 64
REPORT_BYTES = len(_MAGIC) + _KEY_BYTES + _MEASUREMENT_BYTES + _SIGNATURE_BYTES

#: TEST FIXTURE, NOT A SECRET: the seed of the Ed25519 "vendor" key that signs attestation
#: reports in this project. It is public, so a report signed with it proves nothing outside
#: tests and simulations; a real board's root of trust replaces it.
TEST_VENDOR_KEY_SEED = bytes.fromhex(
    "b01750e5d0e0f1c7a5e7c0ffee0ddba11b01750e5d0e0f1c7a5e7c0ffee0ddba")


def fixture_vendor_key() -> Ed25519PrivateKey:
    """The TEST FIXTURE vendor signing key (public, see :data:`TEST_VENDOR_KEY_SEED`)."""
    return Ed25519PrivateKey.from_private_bytes(TEST_VENDOR_KEY_SEED)


def fixture_vendor_public_key() -> Ed25519PublicKey:
    """The public half of the TEST FIXTURE vendor key: what clients verify reports with."""
    return fixture_vendor_key().public_key()


def measurement(kind: str, params: Params, code: bytes) -> bytes:
    """SHA-256 of ``kind``, the parameters (canonical JSON) and the design's ``code``."""
    digest = hashlib.sha256(b"bolt-omap measurement v1\0")
    for part in (kind.encode(), json.dumps(params.arguments(), sort_keys=True).encode(), code):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def reference_measurement(params: Params) -> bytes:
    """What the reference model measures: its version and ``params``."""
    from ..model import MODEL_VERSION
    return measurement("reference", params, MODEL_VERSION.encode())


def rtl_measurement(params: Params, verilog: bytes) -> bytes:
    """What the RTL measures: the Verilog generated for ``params``, and ``params``."""
    return measurement("rtl", params, verilog)


@dataclass(frozen=True)
class Report:
    """An attestation report (see the module documentation for its bytes)."""

    device_key: bytes    #: the device's X25519 public key (raw, 32 bytes)
    measurement: bytes   #: SHA-256 of the design
    signature: bytes     #: the vendor's Ed25519 signature

    @staticmethod
    def _signed(device_key: bytes, measurement_: bytes) -> bytes:
        return _MAGIC + device_key + measurement_

    @classmethod
    def sign(cls, device_key: bytes, measurement_: bytes,
             vendor_key: Ed25519PrivateKey) -> "Report":
        return cls(device_key, measurement_,
                   vendor_key.sign(cls._signed(device_key, measurement_)))

    def to_bytes(self) -> bytes:
        return self._signed(self.device_key, self.measurement) + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> "Report":
        if len(data) != REPORT_BYTES or not data.startswith(_MAGIC):
            raise AttestationError(f"not an attestation report ({len(data)} bytes)")
        start = len(_MAGIC)
        return cls(data[start:start + _KEY_BYTES],
                   data[start + _KEY_BYTES:start + _KEY_BYTES + _MEASUREMENT_BYTES],
                   data[start + _KEY_BYTES + _MEASUREMENT_BYTES:])

    def verify(self, vendor_key: Ed25519PublicKey, expected_measurement: bytes) -> None:
        """Raise :class:`AttestationError` unless the vendor signed this report and it
        measures ``expected_measurement``."""
        try:
            vendor_key.verify(self.signature, self._signed(self.device_key, self.measurement))
        except InvalidSignature:
            raise AttestationError("the attestation report is not signed by the pinned vendor "
                                   "key") from None
        if self.measurement != expected_measurement:
            raise AttestationError(f"the accelerator measures {self.measurement.hex()}, not the "
                                   f"expected {expected_measurement.hex()}")
