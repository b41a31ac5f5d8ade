"""Count SMS segments locally, the way the network does (3GPP TS 23.038 / 23.040).

Why locally: the fee of an SMS is per segment and providers report the count only after sending; the
core needs it before (to refuse overlong texts, to show the operator what a template costs) and every
SMS provider must report the same number for the same text. Norwegian letters æøåÆØÅ are in the GSM-7
default alphabet, so ordinary Norwegian text stays GSM-7 (160 characters) rather than UCS-2 (70).

A concatenated message carries a 6-byte header in every part, which leaves 153 septets (GSM-7) or 67
UTF-16 code units (UCS-2) per segment. Phones do not split an extension escape pair (ESC + char) or a
UTF-16 surrogate pair across two segments, so neither does this count.
"""

from __future__ import annotations

from collections.abc import Iterable

from legetime.core.platform.providers.sms import SmsEncoding

# The GSM 03.38 default alphabet (without ESC, 0x1B, which only introduces the extension table).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs two septets (ESC + code).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160
GSM7_PER_SEGMENT = 153
UCS2_SINGLE = 70
UCS2_PER_SEGMENT = 67


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 default alphabet or its extension table."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def _gsm7_cost(char: str) -> int:
    return 2 if char in GSM7_EXTENSION else 1


def _ucs2_cost(char: str) -> int:
    # Characters outside the Basic Multilingual Plane (most emoji) are a UTF-16 surrogate pair.
    return 2 if ord(char) > 0xFFFF else 1


def _segments(costs: Iterable[int], single: int, per_segment: int) -> int:
    """Segments needed for characters of the given costs, never splitting one character's units."""
    costs = list(costs)
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per_segment:
            segments, used = segments + 1, 0
        used += cost
    return segments


def encode_info(text: str) -> tuple[SmsEncoding, int]:
    """The encoding an SMS with this text is sent in, and how many segments it takes.

    An empty text is one (empty) segment: the network still sends one message.
    """
    if is_gsm7(text):
        return SmsEncoding.GSM7, _segments(map(_gsm7_cost, text), GSM7_SINGLE, GSM7_PER_SEGMENT)
    return SmsEncoding.UCS2, _segments(map(_ucs2_cost, text), UCS2_SINGLE, UCS2_PER_SEGMENT)


__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "encode_info", "is_gsm7"]
