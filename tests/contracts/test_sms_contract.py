"""The SMS contract (``legetime.testing.SmsContract``), run against each provider the plugins offer.

Provider-specific setup (credentials, a fake server, how to sign a delivery report, how to see what was
sent) lives in a driver per provider name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.sms import DeliveryStatus
from legetime.testing import SmsContract, SmsDriver, build_provider
from tests.contracts.builtin import check_against_driver, fixtures_for
from tests.fakes import link_mobility as link_mobility_fake
from tests.fakes import twilio as twilio_fake

OUTBOX_SECRET = "contract-test-outbox-dlr-secret"


@contextmanager
def _build_outbox(spec: ProviderSpec, data_dir: Path) -> Iterator[Any]:
    yield build_provider(spec, data_dir, spec.settings_model(signing_secret=OUTBOX_SECRET))


async def _outbox_sent_count(provider: Any, reference: str) -> int:
    return sum(stored.reference == reference for stored in await provider.messages(limit=1000))


def _outbox_delivery_report(
    provider_id: str, status: DeliveryStatus, at: datetime
) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": provider_id, "status": status.value, "at": at.isoformat()}).encode()
    signature = hmac.new(OUTBOX_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Outbox-Signature": signature, "Content-Type": "application/json"}, body


DRIVERS: dict[str, SmsDriver] = {
    "outbox": SmsDriver(
        sent_count=_outbox_sent_count, delivery_report=_outbox_delivery_report, build=_build_outbox
    ),
    "twilio": twilio_fake.contract_driver(),
    "link-mobility": link_mobility_fake.contract_driver(),
}

legetime_spec, legetime_driver = fixtures_for(Capability.SMS, DRIVERS, __file__)


class TestSmsContract(SmsContract):
    pass


async def test_the_check_is_ok_against_the_driver(
    legetime_spec: ProviderSpec, legetime_driver: Any, tmp_path: Path
) -> None:
    await check_against_driver(legetime_spec, legetime_driver, tmp_path)
