"""``sanitize_image``: only real JPEG/PNG/WebP, within limits, re-encoded with no metadata and upright."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, PngImagePlugin

from legetime.core.consultation.images import CleanImage, sanitize_image
from legetime.core.platform.errors import ErrorCode, ImageTooLarge, InvalidImage

RED = (255, 0, 0)
BLUE = (0, 0, 255)
PLACE: dict[int, tuple[float, float, float]] = {
    ExifTags.GPS.GPSLatitude: (59.0, 54.0, 30.0),
    ExifTags.GPS.GPSLongitude: (10.0, 45.0, 0.0),
}

# --- building test images ----------------------------------------------------------------------------


def two_colours(size: tuple[int, int] = (20, 10), mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: shows which way the picture was turned."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return image.convert(mode)


def noisy(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Random pixels, so an encoded file is big enough to cut in half meaningfully."""
    return Image.frombytes("RGB", size, bytes((i * 7919) % 251 for i in range(size[0] * size[1] * 3)))


def phone_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.Model] = "Pasientens telefon"
    exif[ExifTags.Base.DateTime] = "2025:03:30 19:59:00"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps.update(PLACE)
    return exif


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description creator="Kari"/></rdf:RDF></x:xmpmeta>'


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_with_text(image: Image.Image) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Kari Nordmann")
    info.add_text("Comment", "fødselsnummer 01010112345", zip=True)
    info.add_itxt("Description", "Utslett på armen, Oslo", lang="no")
    return encode(image, "PNG", pnginfo=info, exif=phone_exif())


def crafted_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` but whose pixel data is a few bytes: what an
    attacker sends. Decoding it would fail, so "too large" (not "invalid") proves the header was checked
    before any pixel was decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def linear_rgb_profile() -> bytes:
    """A minimal ICC v2 display profile: sRGB primaries but *linear* tone curves. A pixel 128 in it is
    about 188 in sRGB, so converting (rather than dropping the profile) shows in the pixel values."""
    text = b"linear RGB\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    identity_curve = b"curv" + b"\0" * 4 + struct.pack(">I", 0)
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", identity_curve),
        (b"gTRC", identity_curve),
        (b"bTRC", identity_curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", offset + len(body))
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"\0" * 48
    )
    return header + struct.pack(">I", len(tags)) + table + body


def reopen(clean: CleanImage) -> Image.Image:
    image = Image.open(io.BytesIO(clean.data))
    image.load()
    return image


def alpha(pixel: object) -> int:
    assert isinstance(pixel, tuple)
    return int(pixel[3])


def close_to(actual: object, expected: tuple[int, ...], tolerance: int = 12) -> bool:
    assert isinstance(actual, tuple)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


METADATA_KEYS = {
    "exif",
    "xmp",
    "XML:com.adobe.xmp",
    "icc_profile",
    "comment",
    "Author",
    "Comment",
    "Description",
}


def assert_no_metadata(clean: CleanImage) -> None:
    image = reopen(clean)
    assert not (METADATA_KEYS & set(image.info)), image.info
    assert len(image.getexif()) == 0
    assert image.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    if isinstance(image, PngImagePlugin.PngImageFile):
        assert image.text == {}
    for secret in (b"Exif", b"PhoneCo", b"Pasientens", b"Kari", b"xmpmeta", b"Oslo"):
        assert secret not in clean.data


def assert_invalid(data: bytes, code: ErrorCode = ErrorCode.INVALID_IMAGE) -> InvalidImage:
    with pytest.raises(InvalidImage) as caught:
        sanitize_image(data)
    assert caught.value.code is code
    assert caught.value.field == "image"
    return caught.value


# --- metadata ----------------------------------------------------------------------------------------


def test_jpeg_loses_exif_gps_xmp_comment_and_profile() -> None:
    original = encode(
        two_colours(), "JPEG", exif=phone_exif(), comment=b"Kari", xmp=XMP, icc_profile=linear_rgb_profile()
    )
    before = Image.open(io.BytesIO(original))
    assert (
        before.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude]
        == PLACE[ExifTags.GPS.GPSLatitude]
    )
    assert {"exif", "comment", "xmp", "icc_profile"} <= set(before.info)

    clean = sanitize_image(original)

    assert clean.content_type == "image/jpeg"
    assert (clean.width, clean.height) == (20, 10)
    assert reopen(clean).format == "JPEG"
    assert_no_metadata(clean)


def test_png_loses_text_chunks_and_exif() -> None:
    original = png_with_text(two_colours())
    before = Image.open(io.BytesIO(original))
    assert isinstance(before, PngImagePlugin.PngImageFile)
    assert before.text.keys() == {"Author", "Comment", "Description"}

    clean = sanitize_image(original)

    assert clean.content_type == "image/png"
    assert (clean.width, clean.height) == (20, 10)
    assert reopen(clean).format == "PNG"
    assert_no_metadata(clean)
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"):
        assert chunk not in clean.data


def test_webp_loses_exif_xmp_and_profile() -> None:
    original = encode(two_colours(), "WEBP", exif=phone_exif(), xmp=XMP, icc_profile=linear_rgb_profile())
    assert "exif" in Image.open(io.BytesIO(original)).info

    clean = sanitize_image(original)

    assert clean.content_type == "image/webp"
    assert (clean.width, clean.height) == (20, 10)
    assert reopen(clean).format == "WEBP"
    assert_no_metadata(clean)
    for chunk in (b"EXIF", b"XMP ", b"ICCP"):
        assert chunk not in clean.data


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_format_follows_the_content_not_a_claimed_type(fmt: str, content_type: str) -> None:
    clean = sanitize_image(encode(two_colours(), fmt))
    assert clean.content_type == content_type
    assert reopen(clean).format == fmt


# --- orientation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_orientation_is_applied_before_the_tag_is_dropped(fmt: str) -> None:
    # Orientation 6: the camera was held turned; viewers rotate 90° clockwise. Left (red) ends on top.
    clean = sanitize_image(encode(two_colours((20, 10)), fmt, exif=phone_exif(orientation=6)))

    assert (clean.width, clean.height) == (10, 20)
    image = reopen(clean).convert("RGB")
    assert close_to(image.getpixel((5, 2)), RED)
    assert close_to(image.getpixel((5, 17)), BLUE)
    assert_no_metadata(clean)


def test_without_orientation_the_picture_is_left_as_it_is() -> None:
    clean = sanitize_image(encode(two_colours((20, 10)), "JPEG", exif=phone_exif(orientation=1)))
    image = reopen(clean)
    assert image.size == (20, 10)
    assert close_to(image.getpixel((2, 5)), RED)


# --- colour and modes --------------------------------------------------------------------------------


def test_an_embedded_profile_is_applied_then_dropped() -> None:
    grey = Image.new("RGB", (8, 8), (128, 128, 128))
    clean = sanitize_image(encode(grey, "PNG", icc_profile=linear_rgb_profile()))
    image = reopen(clean)
    assert "icc_profile" not in image.info
    # Linear 128 is sRGB ~188: the colours were converted, not reinterpreted.
    assert close_to(image.getpixel((0, 0)), (188, 188, 188), tolerance=2)


def test_an_unusable_profile_is_ignored_not_fatal() -> None:
    clean = sanitize_image(encode(Image.new("RGB", (8, 8), RED), "PNG", icc_profile=b"not a profile" * 10))
    image = reopen(clean)
    assert "icc_profile" not in image.info
    assert image.getpixel((0, 0)) == RED


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red in CMYK
    clean = sanitize_image(encode(cmyk, "JPEG"))
    image = reopen(clean)
    assert image.mode == "RGB"
    assert close_to(image.getpixel((8, 8)), RED)


def test_greyscale_jpeg_stays_grey() -> None:
    clean = sanitize_image(encode(Image.new("L", (8, 8), 100), "JPEG"))
    assert reopen(clean).mode == "L"


def test_palette_png_keeps_palette_and_transparency() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    image.paste(0, (0, 0, 4, 8))
    clean = sanitize_image(encode(image, "PNG", transparency=0))
    out = reopen(clean)
    assert out.mode == "P"
    assert out.info.get("transparency") == 0
    rgba = out.convert("RGBA")
    assert alpha(rgba.getpixel((0, 0))) == 0
    assert rgba.getpixel((6, 0)) == (*RED, 255)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "1"])
def test_png_modes_are_kept(mode: str) -> None:
    clean = sanitize_image(encode(Image.new(mode, (8, 8)), "PNG"))
    assert reopen(clean).mode == mode


def test_webp_keeps_alpha() -> None:
    clean = sanitize_image(encode(Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "WEBP", lossless=True))
    out = reopen(clean)
    assert out.mode == "RGBA"
    assert alpha(out.getpixel((0, 0))) == 0


# --- size ------------------------------------------------------------------------------------------


def test_a_long_side_over_max_side_is_scaled_down_keeping_the_aspect() -> None:
    clean = sanitize_image(encode(two_colours((5000, 100)), "PNG"))
    assert (clean.width, clean.height) == (4096, 82)
    assert reopen(clean).size == (4096, 82)


def test_scaling_down_after_turning() -> None:
    clean = sanitize_image(encode(two_colours((40, 20)), "JPEG", exif=phone_exif(orientation=6)), max_side=16)
    assert (clean.width, clean.height) == (8, 16)


def test_a_palette_image_is_scaled_smoothly_as_colour() -> None:
    clean = sanitize_image(encode(two_colours((40, 20), mode="P"), "PNG"), max_side=10)
    out = reopen(clean)
    assert out.size == (10, 5)
    assert out.mode == "RGB"


def test_max_side_none_keeps_the_size_and_small_images_are_never_enlarged() -> None:
    assert sanitize_image(encode(two_colours((5000, 10)), "PNG"), max_side=None).width == 5000
    assert sanitize_image(encode(two_colours((20, 10)), "PNG"), max_side=4096).width == 20


def test_over_max_bytes_is_refused_before_decoding() -> None:
    data = encode(noisy(), "PNG")
    assert sanitize_image(data, max_bytes=len(data)).width == 64

    with pytest.raises(ImageTooLarge) as caught:
        sanitize_image(data, max_bytes=len(data) - 1)
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert caught.value.field == "image"
    assert "for stort" in caught.value.message

    # Garbage too: the size is refused before anything looks at the content.
    with pytest.raises(ImageTooLarge):
        sanitize_image(b"x" * 11 * 1024 * 1024)


def test_over_max_pixels_is_refused() -> None:
    data = encode(two_colours((20, 10)), "PNG")
    assert sanitize_image(data, max_pixels=200).width == 20
    with pytest.raises(ImageTooLarge) as caught:
        sanitize_image(data, max_pixels=199)
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert "megapiksler" in caught.value.message


def test_pixel_count_is_checked_from_the_header_before_decoding() -> None:
    # 3000 × 3000 = 9 MP of pixel data that is not there: too large, not "invalid".
    with pytest.raises(ImageTooLarge):
        sanitize_image(crafted_png(3000, 3000), max_pixels=1_000_000)


def test_a_decompression_bomb_is_too_large() -> None:
    # 50000 × 50000: Pillow itself refuses it (DecompressionBombError); reported as too large.
    with pytest.raises(ImageTooLarge):
        sanitize_image(crafted_png(50_000, 50_000))


def test_a_bomb_pillow_only_warns_about_is_refused_too() -> None:
    # 10000 × 10000 = 100 MP: over Pillow's limit (it warns) and therefore always over ours.
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ImageTooLarge):
        sanitize_image(crafted_png(10_000, 10_000))


def test_limits_must_be_sane() -> None:
    data = encode(two_colours(), "PNG")
    with pytest.raises(ValueError, match="Pillow"):
        sanitize_image(data, max_pixels=10**12)
    for bad in ({"max_bytes": 0}, {"max_pixels": 0}, {"max_side": 0}):
        with pytest.raises(ValueError):
            sanitize_image(data, **bad)


# --- what is refused ---------------------------------------------------------------------------------

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param("Hei, her er bildet mitt på rød hud".encode(), id="text"),
        pytest.param(encode(two_colours(), "GIF"), id="gif"),
        pytest.param(encode(two_colours(), "BMP"), id="bmp"),
        pytest.param(encode(two_colours(), "TIFF"), id="tiff"),
        pytest.param(encode(two_colours(), "PDF"), id="pdf-from-pillow"),
        pytest.param(b"%PDF-1.7\n" + encode(two_colours(), "JPEG"), id="pdf-header-then-jpeg"),
        pytest.param(SVG, id="svg"),
        pytest.param(b"<html><body>" + encode(two_colours(), "PNG"), id="html-then-png"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x13\x37" * 200, id="png-signature-then-garbage"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"\0" * 100, id="jpeg-signature-then-garbage"),
        pytest.param(b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\0" * 20, id="webp-header-then-garbage"),
    ],
)
def test_non_images_are_refused(data: bytes) -> None:
    error = assert_invalid(data)
    assert error.message.startswith("Filen er ikke et gyldig bilde")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_are_refused(fmt: str) -> None:
    data = encode(noisy(), fmt)
    assert_invalid(data[: len(data) // 2])


def test_a_png_with_a_corrupt_chunk_is_refused() -> None:
    data = bytearray(encode(noisy(), "PNG"))
    data[60] ^= 0xFF  # inside the first IDAT: its CRC no longer matches
    assert_invalid(bytes(data))


def test_animated_webp_and_png_are_refused() -> None:
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)]
    for fmt in ("WEBP", "PNG"):
        animated = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
        assert getattr(Image.open(io.BytesIO(animated)), "n_frames", 1) == 2
        error = assert_invalid(animated)
        assert "Animerte" in error.message


def test_a_multi_picture_jpeg_keeps_its_primary_picture() -> None:
    primary, depth_map = two_colours((20, 10)), Image.new("RGB", (20, 10), (0, 255, 0))
    data = encode(primary, "MPO", save_all=True, append_images=[depth_map])
    assert Image.open(io.BytesIO(data)).format == "MPO"

    clean = sanitize_image(data)

    image = reopen(clean)
    assert (clean.content_type, image.format, image.size) == ("image/jpeg", "JPEG", (20, 10))
    assert close_to(image.getpixel((2, 5)), RED)
    assert getattr(image, "n_frames", 1) == 1


# --- polyglots: whatever rides along is not copied ----------------------------------------------------


def test_payload_appended_to_a_jpeg_is_not_copied() -> None:
    payload = b"PK\x03\x04<script>alert('xss')</script>"
    clean = sanitize_image(encode(noisy(), "JPEG") + payload)
    assert b"PK\x03\x04" not in clean.data
    assert b"<script>" not in clean.data


def test_payload_in_a_jpeg_comment_is_not_copied() -> None:
    clean = sanitize_image(encode(noisy(), "JPEG", comment=b"<?php system($_GET['c']); ?>"))
    assert b"<?php" not in clean.data


def test_payload_after_png_end_is_not_copied() -> None:
    clean = sanitize_image(encode(noisy(), "PNG") + b"<html><script>alert(1)</script></html>")
    assert b"<script>" not in clean.data


# --- the result --------------------------------------------------------------------------------------


def test_sha256_is_of_the_output_and_output_is_deterministic() -> None:
    data = encode(two_colours(), "JPEG", exif=phone_exif())
    first, second = sanitize_image(data), sanitize_image(data)
    assert first.sha256 == hashlib.sha256(first.data).hexdigest()
    assert first.sha256 != hashlib.sha256(data).hexdigest()
    assert first == second


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_cleaning_a_clean_image_again_keeps_type_and_size(fmt: str) -> None:
    once = sanitize_image(encode(two_colours(), fmt, exif=phone_exif(orientation=6)))
    twice = sanitize_image(once.data)
    assert (twice.content_type, twice.width, twice.height) == (once.content_type, 10, 20)


# --- robustness: untrusted bytes only ever give a clean image or InvalidImage -----------------------

SAMPLES = [encode(noisy((16, 12)), fmt) for fmt in ("JPEG", "PNG", "WEBP")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(SAMPLES),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_damaged_images_never_raise_anything_else(
    sample: bytes, flips: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(sample)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        del data[cut % len(data) :]
    try:
        clean = sanitize_image(bytes(data), max_pixels=1_000_000)
    except InvalidImage:
        return
    assert clean.content_type in {"image/jpeg", "image/png", "image/webp"}
    assert_no_metadata(clean)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        sanitize_image(data)
