"""SMS segment counting: known boundaries plus properties that must hold for any text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from legetime.core.platform.providers.sms import SmsEncoding
from legetime.core.platform.providers.sms_segments import GSM7_BASIC, GSM7_EXTENSION, encode_info, is_gsm7

GSM7 = SmsEncoding.GSM7
UCS2 = SmsEncoding.UCS2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (GSM7, 1)),
        ("a" * 160, (GSM7, 1)),
        ("a" * 161, (GSM7, 2)),
        ("a" * 306, (GSM7, 2)),
        ("a" * 307, (GSM7, 3)),
        ("æøå ÆØÅ", (GSM7, 1)),
        ("Hei! Legen har svart på henvendelsen din. Logg inn for å lese svaret.", (GSM7, 1)),
        ("€" * 80, (GSM7, 1)),  # 160 septets
        ("€" * 81, (GSM7, 2)),  # 162 septets
        ("a" * 159 + "€", (GSM7, 2)),  # the escape pair does not fit in the single message
        ("[]{}\\^~|", (GSM7, 1)),
        ("ą" * 70, (UCS2, 1)),
        ("ą" * 71, (UCS2, 2)),
        ("ą" * 134, (UCS2, 2)),
        ("ą" * 135, (UCS2, 3)),
        ("😀", (UCS2, 1)),
        ("😀" * 35, (UCS2, 1)),  # 70 UTF-16 code units
        ("😀" * 36, (UCS2, 2)),
        ("æøå 😀", (UCS2, 1)),
        ("ç", (UCS2, 1)),  # only capital Ç is in the default alphabet
    ],
)
def test_known_examples(text: str, expected: tuple[SmsEncoding, int]) -> None:
    assert encode_info(text) == expected


def test_extension_pair_is_not_split_across_segments() -> None:
    # 306 septets would fit two 153-septet segments, but the € pair cannot straddle the boundary.
    text = "a" * 152 + "€" + "a" * 152
    assert encode_info(text) == (GSM7, 3)
    assert encode_info("a" * 151 + "€" + "a" * 153) == (GSM7, 2)


def test_surrogate_pair_is_not_split_across_segments() -> None:
    # 134 code units would fit two 67-unit segments, but the emoji cannot straddle the boundary.
    text = "ą" * 66 + "😀" + "ą" * 66
    assert encode_info(text) == (UCS2, 3)
    assert encode_info("ą" * 65 + "😀" + "ą" * 67) == (UCS2, 2)


def test_one_char_outside_gsm7_switches_the_whole_message() -> None:
    assert encode_info("a" * 100) == (GSM7, 1)
    assert encode_info("a" * 100 + "ł") == (UCS2, 2)


def test_alphabet_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # 128 code points minus ESC
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


gsm7_text = st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)), max_size=800)


@given(gsm7_text)
def test_pure_gsm7_is_never_ucs2(text: str) -> None:
    assert is_gsm7(text)
    assert encode_info(text)[0] is GSM7


@given(st.text(max_size=600), st.text(max_size=300))
def test_segments_monotone_in_length(text: str, more: str) -> None:
    assert encode_info(text)[1] <= encode_info(text + more)[1]


@given(gsm7_text, gsm7_text)
def test_gsm7_segments_monotone_in_length(text: str, more: str) -> None:
    assert encode_info(text)[1] <= encode_info(text + more)[1]


@given(st.text(max_size=600))
def test_segments_bounded_by_capacity(text: str) -> None:
    encoding, segments = encode_info(text)
    if encoding is GSM7:
        septets = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        assert segments == 1 or septets > 160
        # Avoiding split pairs wastes at most one septet per segment.
        assert segments <= max(1, -(-septets // 152))
    else:
        units = len(text.encode("utf-16-le")) // 2
        assert segments == 1 or units > 70
        assert segments <= max(1, -(-units // 66))
