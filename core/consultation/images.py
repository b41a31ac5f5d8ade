"""Clean a patient's photo before it is stored: only real JPEG, PNG or WebP, within limits, with no metadata.

Why: a phone photo carries EXIF (GPS position, time, device serial), XMP and text chunks a patient never
meant to send, and an upload can be anything that merely claims to be an image. So the bytes are decoded
with Pillow — never trusting the client's content type or file name — and the *pixels* are re-encoded
into a fresh file. Nothing of the original file except its pixels survives, which also neutralises
polyglots (a valid JPEG with a ZIP or a script appended or hidden in a comment): the payload is simply not
copied. A file Pillow cannot decode as one of the three formats is refused.

Decisions:

- **Orientation** is applied first (``ImageOps.exif_transpose``, EXIF or XMP), because once the EXIF is
  gone a viewer can no longer rotate the picture and the clinician would see it on its side.
- **Colour**: the colour of a rash matters, and phones tag photos with wide-gamut profiles (Display P3).
  An embedded ICC profile is therefore *applied* — the pixels are converted to sRGB — and then dropped
  (a profile can name the device). Untagged output is read as sRGB everywhere. A profile that cannot be
  used is ignored rather than refusing the photo.
- **Modes**: JPEG output is ``L`` or ``RGB`` (CMYK is converted); PNG keeps ``1``, ``L``, ``LA``, ``P``
  (with its palette and transparency), ``RGB``, ``RGBA`` and 16-bit grey; WebP is ``RGB`` or ``RGBA``.
- **Animation**: animated WebP and APNG are refused — an animation is not a photo, and keeping only the
  first frame would silently show the clinician less than the patient sent. A multi-picture JPEG (MPO,
  common from phones: the extra pictures are depth maps or previews) keeps its primary picture.
- **Size**: over ``max_bytes`` is refused before decoding; over ``max_pixels`` (by the header, before any
  pixel is decoded) is refused as a decompression bomb. A longest side over ``max_side`` is scaled down,
  keeping the aspect ratio (Lanczos), since a clinician gains nothing from more and storage does.
- **Limits live in the call, not in globals**: Pillow's ``Image.MAX_IMAGE_PIXELS`` and warning filters are
  process-wide and uploads are cleaned in worker threads, so neither is changed here. ``max_pixels`` may
  not exceed Pillow's limit; that way an image Pillow only *warns* about is always one refused here too,
  and one it refuses (``DecompressionBombError``) is reported as too large.

Output: JPEG quality 90, PNG optimised, WebP quality 90. This is CPU work; call it off the event loop.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageCms, ImageOps

from legetime.core.platform.errors import ImageTooLarge, InvalidImage

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS: Final = 40_000_000
DEFAULT_MAX_SIDE: Final = 4096

FIELD: Final = "image"

# Pillow format name -> the format written and its content type. MPO is a JPEG with extra pictures.
_OUTPUT: Final[dict[str, tuple[str, str]]] = {
    "JPEG": ("JPEG", "image/jpeg"),
    "MPO": ("JPEG", "image/jpeg"),
    "PNG": ("PNG", "image/png"),
    "WEBP": ("WEBP", "image/webp"),
}
# Decoders Pillow may try at all: nothing else is even attempted (no GIF, TIFF, PDF, EPS, ...).
_DECODERS: Final = ("JPEG", "PNG", "WEBP")

# Modes each output format keeps as they are; anything else is converted to RGB or RGBA.
_KEPT_MODES: Final[dict[str, frozenset[str]]] = {
    "JPEG": frozenset({"L", "RGB"}),
    "PNG": frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}),
    "WEBP": frozenset({"RGB", "RGBA"}),
}
# Modes Pillow can only resize with nearest-neighbour (or not at all) -> what to resize them as.
_NOT_RESIZABLE: Final = frozenset({"1", "P"})

_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

MSG_INVALID: Final = "Filen er ikke et gyldig bilde. Last opp et bilde i JPEG-, PNG- eller WebP-format."
MSG_ANIMATED: Final = "Animerte bilder støttes ikke. Last opp ett stillbilde."


@dataclass(frozen=True, slots=True)
class CleanImage:
    """A re-encoded image without metadata. ``sha256`` is the hex digest of ``data``."""

    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def sanitize_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> CleanImage:
    """Decode ``data`` as JPEG, PNG or WebP and re-encode its pixels alone (see the module docstring).

    Raises ``ImageTooLarge`` (over ``max_bytes`` or ``max_pixels``) or ``InvalidImage`` (anything else
    that is not a still JPEG, PNG or WebP Pillow can fully decode); both concern the field ``image``.
    ``max_side=None`` keeps the original size.
    """
    _check_limits(max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side)
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"Bildet er for stort. Største tillatte filstørrelse er {_megabytes(max_bytes)} MB.", field=FIELD
        )

    source_format = _verify(data, max_pixels=max_pixels)
    image = _decode(data, max_side=max_side)
    out_format, content_type = _OUTPUT[source_format]

    image = _upright(image)
    image = _to_srgb(image)
    image = _to_output_mode(image, out_format)
    if max_side is not None:
        image = _fit(image, max_side)

    encoded = _encode(_pixels_only(image), out_format)
    return CleanImage(
        data=encoded,
        content_type=content_type,
        width=image.width,
        height=image.height,
        sha256=hashlib.sha256(encoded).hexdigest(),
    )


# --- decoding ----------------------------------------------------------------------------------------


def _check_limits(*, max_bytes: int, max_pixels: int, max_side: int | None) -> None:
    if max_bytes <= 0 or max_pixels <= 0 or (max_side is not None and max_side <= 0):
        raise ValueError("image limits must be positive")
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pillow_limit is not None and max_pixels > pillow_limit:
        raise ValueError(f"max_pixels may not exceed Pillow's limit ({pillow_limit})")


def _verify(data: bytes, *, max_pixels: int) -> str:
    """First pass: identify the format, check the header's size and the file's structure. Returns the
    Pillow format name. ``verify()`` leaves the image unusable, hence the second pass in ``_decode``."""
    try:
        with Image.open(io.BytesIO(data), formats=_DECODERS) as probe:
            source_format = probe.format
            width, height = probe.size
            frames = getattr(probe, "n_frames", 1)
            if source_format in _OUTPUT and width * height <= max_pixels:
                probe.verify()
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except Exception:  # any failure to parse untrusted bytes means "not an image we take"
        raise InvalidImage(MSG_INVALID, field=FIELD) from None

    if source_format not in _OUTPUT:
        raise InvalidImage(MSG_INVALID, field=FIELD)
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels)
    if frames > 1 and source_format != "MPO":
        raise InvalidImage(MSG_ANIMATED, field=FIELD)
    return source_format


def _decode(data: bytes, *, max_side: int | None) -> Image.Image:
    """Second pass: decode every pixel, so a truncated or corrupt body is refused here and not later."""
    try:
        image = Image.open(io.BytesIO(data), formats=_DECODERS)
        if max_side is not None and image.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the result still covers max_side: less
            # memory and time for huge photos. Never smaller than asked for; ``_fit`` does the rest.
            image.draft(image.mode, (max_side, max_side))
        image.load()
    except Exception:  # a body that does not decode, e.g. a truncated file (the size passed _verify)
        raise InvalidImage(MSG_INVALID, field=FIELD) from None
    return image


def _too_many_pixels(max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"Bildet har for høy oppløsning. Største tillatte er {max_pixels / 1_000_000:g} megapiksler.",
        field=FIELD,
    )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g}".replace(".", ",")


# --- cleaning ----------------------------------------------------------------------------------------


def _upright(image: Image.Image) -> Image.Image:
    """Turn the pixels the way the EXIF/XMP orientation says, before that tag is thrown away. Metadata
    too broken to read leaves the picture as stored: a sideways photo is better than a refused one."""
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:
        return image
    return upright if upright is not None else image


def _to_srgb(image: Image.Image) -> Image.Image:
    """Apply an embedded ICC profile by converting to sRGB (see module docstring), else leave as is."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=output_mode)
    except Exception:  # an unusable profile: the pixels are still fine, read them as sRGB
        return image
    return converted if converted is not None else image


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "transparency" in image.info


def _to_output_mode(image: Image.Image, out_format: str) -> Image.Image:
    if image.mode in _KEPT_MODES[out_format]:
        return image
    if out_format != "JPEG" and _has_alpha(image):
        return image.convert("RGBA")
    return image.convert("RGB")


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    """Scale down so the longest side is ``max_side``, keeping the aspect ratio; never scale up."""
    longest = max(image.size)
    if longest <= max_side:
        return image
    if image.mode in _NOT_RESIZABLE:
        # Palette and 1-bit images only resize by nearest neighbour; smooth them as grey or colour.
        image = (
            image.convert("L") if image.mode == "1" else image.convert("RGBA" if _has_alpha(image) else "RGB")
        )
    scale = max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _pixels_only(image: Image.Image) -> Image.Image:
    """A new image holding only the pixels (and, for palette images, the palette and transparency), so
    no ``info`` entry — EXIF, XMP, ICC, comments, PNG text — can reach the encoder."""
    fresh = Image.frombytes(image.mode, image.size, image.tobytes())
    if image.mode == "P" and image.palette is not None:
        palette_mode = image.palette.mode
        fresh.putpalette(image.getpalette(palette_mode) or [], palette_mode)
    transparency = image.info.get("transparency")
    if transparency is not None and image.mode in ("1", "L", "P", "RGB", "I;16"):
        fresh.info["transparency"] = transparency
    return fresh


def _encode(image: Image.Image, out_format: str) -> bytes:
    buffer = io.BytesIO()
    if out_format == "JPEG":
        image.save(buffer, "JPEG", quality=90, optimize=True)
    elif out_format == "PNG":
        image.save(buffer, "PNG", optimize=True)
    else:
        image.save(buffer, "WEBP", quality=90)
    return buffer.getvalue()
