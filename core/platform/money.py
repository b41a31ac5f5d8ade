"""Money as integer minor units plus an ISO 4217 currency (35000 NOK = kr 350,00). Never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount must be an int of minor units")
        if self.amount < 0:
            raise ValueError("Money.amount must not be negative")
        if not _CURRENCY.match(self.currency):
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    def __str__(self) -> str:
        major, minor = divmod(self.amount, 100)
        return f"{self.currency} {major},{minor:02d}"
