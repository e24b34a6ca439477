"""localstripe (PyPI, github.com/adrienverge/localstripe): a third-party Stripe emulator, run as a
real process on a free port, and seeded through the official `stripe` Python client.

    with LocalStripe() as ls:          # localstripe --port P --from-scratch
        sc = ls.client()                # stripe.StripeClient aimed at it
        sc.v1.customers.create(...)

What it is and is not (localstripe 1.15): its objects have the pre-2025-03-31 shapes
(`invoice.charge`, `invoice.payment_intent`, `charge.invoice`, all regardless of
`Stripe-Version`); it has no `/v1/invoice_payments`; list endpoints refuse filters they do not
implement (`created[gte]` on charges answers 500, on balance transactions 400); fees are 0;
charges carry no `receipt_url`. It binds every interface (`::`), not only loopback, and
writes `/tmp/localstripe.pickle` on each change (`--from-scratch` never reads it back).

Outside CI a missing localstripe skips the test with the reason; with `CI=true` it fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.needs import module, need

KEY = "sk_test_localstripe_0123456789abcdef"  # localstripe accepts any sk_… key


def executable() -> str:
    """The `localstripe` script of this interpreter's environment (or on PATH); skip/fail when absent."""
    here = Path(sys.executable).parent / "localstripe"
    found = str(here) if here.exists() else shutil.which("localstripe")
    if found:
        return found
    need("localstripe is not installed (pip install -e '.[test]')")


def stripe_module():
    """The official stripe client (a test extra); skip/fail like executable()."""
    return module("stripe")


class LocalStripe:
    """`localstripe --port P --from-scratch` for the duration of a `with` block."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = KEY
        self.proc: subprocess.Popen | None = None
        # its access log goes to a file: a pipe nobody reads would fill and stall the server
        self.log = tempfile.TemporaryFile()

    def __enter__(self) -> LocalStripe:
        exe = executable()
        stripe_module()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--from-scratch"],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"localstripe exited {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                httpx.get(self.url + "/v1/customers", auth=(self.key, ""), timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("localstripe did not answer within 30 s") from None
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def output(self) -> str:
        """What localstripe wrote (its access log and any traceback)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def client(self):
        """A `stripe.StripeClient` aimed at this emulator (no retries: a failure should show)."""
        stripe = stripe_module()
        return stripe.StripeClient(self.key, base_addresses={"api": self.url}, max_network_retries=0)
