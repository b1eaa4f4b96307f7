"""Photos on Pillow: orientation applied on read, metadata stripped on write.

A photo is read into the displayed orientation (EXIF orientation applied) so masks land where a viewer
sees the face; it is written without the orientation tag, so it still displays the same way.
EXIF (GPS, maker notes, serials), XMP and IPTC are dropped unless ``keep_metadata``; the ICC colour
profile is kept because it changes how colours display, not who or where.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from anonlab.errors import MediaError, OutputError

try:  # HEIC/HEIF where pillow-heif is installed (the [heic] extra)
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional
    pass

#: Above this many pixels a file is refused as a likely decompression bomb (a 200 MP photo still passes).
MAX_PHOTO_PIXELS = 200_000_000
Image.MAX_IMAGE_PIXELS = MAX_PHOTO_PIXELS

PHOTO_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF", "HEIF", "BMP", "MPO"}
SAVE_FORMAT = {"MPO": "JPEG"}


@dataclass
class Photo:
    """A decoded photo: BGR pixels in displayed orientation plus what is needed to write it back."""

    image: np.ndarray
    format: str
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None


def read_photo(path: str | Path) -> Photo:
    """Read a photo; raise `MediaError` with an actionable line if it cannot be used."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format
                if fmt not in PHOTO_FORMATS:
                    raise MediaError(f"{path.name}: {fmt} images are not supported; convert to JPEG or PNG")
                if getattr(img, "n_frames", 1) > 1 and fmt not in ("MPO", "TIFF"):
                    raise MediaError(f"{path.name}: animated {fmt} is not supported; convert it to a video (MP4) first")
                icc = img.info.get("icc_profile")
                exif = img.info.get("exif")
                img = ImageOps.exif_transpose(img)
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(f"{path.name}: declared image size is too large (over {MAX_PHOTO_PIXELS // 1_000_000} "
                         "megapixels); likely corrupt or a decompression bomb") from None
    except UnidentifiedImageError:
        raise MediaError(f"{path.name}: not an image anonlab can read") from None
    except FileNotFoundError:
        raise MediaError(f"{path.name}: file not found") from None
    except PermissionError:
        raise MediaError(f"{path.name}: permission denied; check the file's access rights") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{path.name}: the image is truncated or corrupt ({exc})") from None
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        alpha = np.asarray(img)[:, :, 3].copy()
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bit rather than clip, so the masked output still looks like the input.
        arr = np.asarray(img, dtype=np.float64)
        peak = arr.max() if arr.size and arr.max() > 255 else 255.0
        img = Image.fromarray((arr * (255.0 / peak)).astype(np.uint8))
    rgb = np.asarray(img.convert("RGB"))
    return Photo(image=np.ascontiguousarray(rgb[:, :, ::-1]), format=fmt, alpha=alpha, icc_profile=icc, exif=exif)


def photo_bytes(photo: Photo, image: np.ndarray, fmt: str, *, keep_metadata: bool = False, quality: int = 95) -> bytes:
    """Encode ``image`` (BGR) as ``fmt``; metadata only if ``keep_metadata``."""
    fmt = SAVE_FORMAT.get(fmt, fmt)
    rgb = image[:, :, ::-1]
    if photo.alpha is not None and fmt in ("PNG", "WEBP", "TIFF"):
        img = Image.fromarray(np.dstack([rgb, photo.alpha]))
    else:
        img = Image.fromarray(np.ascontiguousarray(rgb))
    params: dict = {}
    if photo.icc_profile:
        params["icc_profile"] = photo.icc_profile
    if keep_metadata and photo.exif:
        exif = Image.Exif()
        exif.load(photo.exif)
        exif[0x0112] = 1  # pixels are already upright
        params["exif"] = exif.tobytes()
    if fmt in ("JPEG", "WEBP", "HEIF"):
        params["quality"] = quality
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def write_photo(photo: Photo, image: np.ndarray, dst: str | Path, *, keep_metadata: bool = False) -> None:
    """Write ``image`` to ``dst`` in the format its extension names (callers use `atomic_output`)."""
    dst = Path(dst)
    ext = dst.suffix.lower()
    fmt = Image.registered_extensions().get(ext, photo.format)
    try:
        data = photo_bytes(photo, image, fmt, keep_metadata=keep_metadata)
        dst.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"{dst.name}: writing failed ({exc.strerror or exc})") from None
    except (KeyError, ValueError) as exc:
        raise OutputError(f"{dst.name}: cannot write this format ({exc})") from None
