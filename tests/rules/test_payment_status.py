"""``derive_status``: the payment status follows from the amounts (and three flags), never a stored label."""

from __future__ import annotations

import pytest

from legetime.core.platform.providers.payment import PaymentAmounts, PaymentStatus, derive_status

FEE = 35000


@pytest.mark.parametrize(
    ("amounts", "flags", "status"),
    [
        # Before and without an authorization.
        (PaymentAmounts(), {"pending": True}, PaymentStatus.PENDING),
        (PaymentAmounts(), {}, PaymentStatus.DECLINED),
        (PaymentAmounts(), {"declined": True}, PaymentStatus.DECLINED),
        (PaymentAmounts(), {"pending": True, "expired": True}, PaymentStatus.EXPIRED),
        # Reserved.
        (PaymentAmounts(authorized=FEE), {}, PaymentStatus.AUTHORIZED),
        (PaymentAmounts(authorized=FEE), {"expired": True}, PaymentStatus.EXPIRED),
        # Charged.
        (PaymentAmounts(authorized=FEE, captured=FEE), {}, PaymentStatus.CAPTURED),
        (PaymentAmounts(authorized=FEE, captured=FEE), {"expired": True}, PaymentStatus.CAPTURED),
        (PaymentAmounts(authorized=FEE, captured=10000), {}, PaymentStatus.PARTIALLY_CAPTURED),
        (PaymentAmounts(authorized=FEE, captured=10000), {"expired": True}, PaymentStatus.PARTIALLY_CAPTURED),
        # A partial capture whose rest was released is settled, not "partially" anything.
        (PaymentAmounts(authorized=FEE, captured=10000, released=25000), {}, PaymentStatus.CAPTURED),
        # Given back before anything was charged.
        (PaymentAmounts(authorized=FEE, released=FEE), {}, PaymentStatus.RELEASED),
        (PaymentAmounts(authorized=FEE, released=FEE), {"expired": True}, PaymentStatus.RELEASED),
        # Refunds.
        (PaymentAmounts(authorized=FEE, captured=FEE, refunded=10000), {}, PaymentStatus.CAPTURED),
        (PaymentAmounts(authorized=FEE, captured=FEE, refunded=FEE), {}, PaymentStatus.REFUNDED),
        (
            PaymentAmounts(authorized=FEE, captured=10000, released=25000, refunded=10000),
            {},
            PaymentStatus.REFUNDED,
        ),
        # A decline wins over everything else.
        (PaymentAmounts(authorized=FEE), {"declined": True}, PaymentStatus.DECLINED),
    ],
)
def test_status_from_amounts(amounts: PaymentAmounts, flags: dict[str, bool], status: PaymentStatus) -> None:
    assert derive_status(amounts, **flags) is status


@pytest.mark.parametrize("captured", [1, 17500, 34999])
def test_any_partial_capture_with_the_rest_released_is_captured(captured: int) -> None:
    amounts = PaymentAmounts(authorized=FEE, captured=captured, released=FEE - captured)
    assert derive_status(amounts) is PaymentStatus.CAPTURED
    assert (
        derive_status(PaymentAmounts(authorized=FEE, captured=captured)) is PaymentStatus.PARTIALLY_CAPTURED
    )
