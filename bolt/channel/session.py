"""Session keys: HPKE (RFC 9180) from the client to the accelerator's device key.

Library: pyhpke (RFC 9180 with its test vectors, built on ``cryptography``). Suite:
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode. The client sets up a sender
context to the device key from the verified report (the report is the ``info``, so the session
is bound to it) and sends the encapsulated key. The security monitor answers with a fresh nonce
of its own, and both sides export the two per-direction frame keys with that nonce in the
exporter context: HPKE's base mode alone gives the accelerator no freshness, and a host
replaying an old ``enc`` would otherwise get an old session's keys back, and with them its
frames. A host that alters the nonce only breaks the session (the first frame fails).
"""

from __future__ import annotations

from pyhpke import AEADId, CipherSuite, KDFId, KEMId

__all__ = ["SUITE", "MONITOR_NONCE_BYTES", "FRAME_KEY_BYTES", "session_info", "session_keys"]

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES128_GCM)
MONITOR_NONCE_BYTES = 16
FRAME_KEY_BYTES = 16


def session_info(report: bytes) -> bytes:
    """HPKE ``info``: binds the session to the attestation report the client verified."""
    return b"bolt-omap channel v1\0" + report


def session_keys(context, monitor_nonce: bytes) -> tuple[bytes, bytes]:
    """``(client-to-accelerator key, accelerator-to-client key)`` exported from an HPKE
    sender or recipient context under the monitor's nonce."""
    return (context.export(b"bolt-omap commands\0" + monitor_nonce, FRAME_KEY_BYTES),
            context.export(b"bolt-omap responses\0" + monitor_nonce, FRAME_KEY_BYTES))
