"""The sealed client channel: the host relays only fixed-size ciphertext.

See docs/algorithm.md, "The sealed client channel".

- :mod:`~bolt.channel.frames`: command and response frames, sealed with AES-128-GCM.
- :mod:`~bolt.channel.attestation`: the signed report binding the device key to a measurement
  (the vendor key is a TEST FIXTURE).
- :mod:`~bolt.channel.session`: HPKE (RFC 9180) key agreement, per-direction frame keys.
- :mod:`~bolt.channel.monitor`: the security monitor beside the accelerator.
- :mod:`~bolt.channel.endpoint`: the accelerator's end (the reference for the RTL) and the
  reference backend behind it.
- :mod:`~bolt.channel.client`: the client's end; :mod:`~bolt.channel.relay`: the host.
"""
from .attestation import (Report, reference_measurement, rtl_measurement, fixture_vendor_key,
                          fixture_vendor_public_key)
from .client import ChannelClient
from .endpoint import ChannelEndpoint, ReferenceDevice
from .monitor import SecurityMonitor
from .relay import HostFrame, HostRelay

__all__ = ["ChannelClient", "ChannelEndpoint", "ReferenceDevice", "SecurityMonitor", "HostRelay",
           "HostFrame", "Report", "reference_measurement", "rtl_measurement", "fixture_vendor_key",
           "fixture_vendor_public_key"]
