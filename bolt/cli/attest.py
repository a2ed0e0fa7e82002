"""``bolt attest``: start an accelerator, print its attestation report and check it."""

from __future__ import annotations

import click

from .common import make_params, params_options, print_table


@click.command("attest")
@params_options
@click.option("--backend", type=click.Choice(["reference", "rtl"]), default="reference",
              show_default=True, help="Which accelerator to start.")
@click.option("--raw", is_flag=True, help="Also print the whole report in hex.")
def command(backend, raw, **options):
    """Print an accelerator's attestation report, the measurement this installation expects for
    it, and whether the report verifies (vendor key: the project's TEST FIXTURE)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from ..channel import Report, fixture_vendor_public_key
    from ..errors import AttestationError
    from ..map import DEVICES

    params = make_params(**options)
    if backend not in DEVICES:
        raise click.UsageError(f"the {backend} backend has no sealed channel")
    new_device, expected_measurement = DEVICES[backend]
    device = new_device(params)
    try:
        data = device.report()
        expected = expected_measurement(params, device)
    finally:
        device.close()
    report = Report.from_bytes(data)
    vendor = fixture_vendor_public_key()
    try:
        report.verify(vendor, expected)
        verdict = "verified"
    except AttestationError as error:
        verdict = f"REJECTED: {error}"
    print_table([
        ("backend", backend),
        ("device key (X25519)", report.device_key.hex()),
        ("measurement", report.measurement.hex()),
        ("expected measurement", expected.hex()),
        ("vendor key (Ed25519, TEST FIXTURE)",
         vendor.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()),
        ("report", verdict),
    ], headers=("field", "value"))
    if raw:
        click.echo(data.hex())
    if verdict != "verified":
        raise SystemExit(1)
