"""Photos on Pillow: orientation applied on read, metadata stripped on write, encoding kept.

A photo is read into the displayed orientation (EXIF orientation applied) so masks land where a viewer
sees the face; it is written without the orientation tag, so it still displays the same way.
EXIF (GPS, maker notes, serials), XMP and IPTC are dropped unless ``keep_metadata``; the ICC colour
profile is kept because it changes how colours display, not who or where.

The masked copy keeps the source's encoding so its size stays near the input's (measured: re-saving a
quality-60 webcam JPEG at quality 95 made it 1.4-2.4x larger): a JPEG is written with the source's own
quantisation tables, chroma subsampling and progressive flag (``--jpeg-quality`` overrides); WebP keeps
lossless or lossy; TIFF keeps its compression and a bilevel (fax) or greyscale scan keeps its mode. 16-bit
grey, 16-bit colour (PNG, TIFF: Pillow reads 8 bits a channel, OpenCV reads and writes the values) and CMYK
keep their own values outside the masks; a PNG keeps its pixel density (pHYs).
Every page of a multi-page TIFF (scanned forms) is read, masked and written; pages of different sizes are
refused in one line. An MPO (a camera JPEG with extra preview or stereo images) keeps its primary image
only: the others are unmasked copies of the scene, so they are dropped and counted (``Photo.dropped``).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

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
    """A decoded photo: BGR pixels in displayed orientation plus what is needed to write it back.

    Attributes:
        image: the first (or only) page, ``(H, W, 3)`` uint8 BGR.
        pages: every page (``pages[0] is image``); more than one only for multi-page TIFF.
        mode: the source's Pillow mode family kept on write: ``"RGB"``, ``"L"`` (grey), ``"1"`` (bilevel),
            ``"I;16"`` (16-bit grey), ``"RGB;16"`` (16 bits a channel, RGB or RGBA: PNG and TIFF) or ``"CMYK"``.
        deep: per page, for the modes an 8-bit BGR view cannot hold (16-bit grey or colour, CMYK):
            ``(array, scale)``, the page's own values (``(H, W)`` uint16, ``(H, W, 3|4)`` uint16 BGR(A), or
            ``(H, W, 4)`` uint8 CMYK) and the factor from the view's level back to 16 bit. Written back as they
            are outside the masks.
        encoding: how the source was encoded: JPEG ``qtables``/``subsampling``/``progressive``, WebP
            ``lossless``, TIFF ``compression``.
        dropped: secondary images of an MPO file that are not written (unmasked previews of the scene).
    """

    image: np.ndarray
    format: str
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    pages: list = field(default_factory=list)
    mode: str = "RGB"
    encoding: dict = field(default_factory=dict)
    dropped: int = 0
    deep: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.pages:
            self.pages = [self.image]


_GREY16 = ("I;16", "I;16B", "I;16L")


def _mode_family(img: Image.Image) -> str:
    mode = img.mode
    if mode in ("RGB", "RGBA") and img.format in ("PNG", "TIFF") and any(";16" in str(t.args) for t in img.tile):
        # Pillow reads 16 bits a channel as 8 (its RGB modes hold no more): OpenCV reads the values (`_deep_colour`)
        return "RGB;16"
    if mode in ("1", "CMYK"):
        return mode
    if mode in _GREY16:
        return "I;16"
    if mode in ("L", "LA", "I", "F"):
        return "L"
    return "RGB"


def _grey_scale(arr: np.ndarray) -> float:
    """Levels of a deep grey page per level of its 8-bit view: its peak over 255 (1 when it fits in 8 bit), so
    the view spans the page's own range rather than clipping it."""
    peak = float(arr.max()) if arr.size else 0.0
    return peak / 255.0 if peak > 255 else 1.0


def _deep(img: Image.Image) -> tuple[np.ndarray, float] | None:
    """A page's own values where the 8-bit BGR view loses them (16-bit grey, CMYK), with `_bgr`'s grey scale."""
    if img.mode in _GREY16:
        arr = np.asarray(img).astype(np.uint16)
        return arr, _grey_scale(arr)
    if img.mode == "CMYK":
        return np.asarray(img).copy(), 1.0
    return None


def _bgr(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit greyscale: scale to 8 bit rather than clip, so the masked output still looks like the input.
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((arr / _grey_scale(arr)).astype(np.uint8))
    rgb = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


#: Pillow's transpose for each EXIF orientation (as `ImageOps.exif_transpose` applies it).
_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                   7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _deep_colour(path: Path, turns: list, views: list) -> list | None:
    """Each page's 16-bit values, ``(H, W, 3|4)`` uint16 BGR(A) in displayed orientation, with scale 257 (the 8-bit
    view's level to 16 bit), read by OpenCV; None when they are not the pages Pillow read (another page count,
    size or picture: the 8-bit view is then written, and ``verify`` reports the bit depth lost). ``turns``: each
    page's EXIF orientation (1-8), ``views``: the pages' 8-bit BGR views."""
    import cv2

    data = np.fromfile(path, np.uint8)
    ok, arrays = cv2.imdecodemulti(data, cv2.IMREAD_UNCHANGED)
    if not ok or len(arrays) != len(views):
        return None
    deep = []
    for arr, turn, view in zip(arrays, turns, views):
        transpose = _EXIF_TRANSPOSE.get(turn)
        if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
            return None
        if transpose is not None:  # the channels turned as Pillow turned the view (one 16-bit plane at a time)
            arr = np.dstack([np.asarray(Image.fromarray(arr[:, :, c]).transpose(transpose))
                             for c in range(arr.shape[2])])
        if arr.shape[:2] != view.shape[:2] or np.abs((arr[:, :, :3] >> 8).astype(np.int16) - view).max() > 1:
            return None
        deep.append((np.ascontiguousarray(arr), 257.0))
    return deep


def _encoding(img: Image.Image, path: Path) -> dict:
    fmt = img.format
    if fmt in ("JPEG", "MPO"):
        enc = {"qtables": {k: list(v) for k, v in getattr(img, "quantization", {}).items()},
               "subsampling": JpegImagePlugin.get_sampling(img), "progressive": bool(img.info.get("progressive"))}
        return {k: v for k, v in enc.items() if v not in ({}, -1)}
    if fmt == "WEBP":
        with open(path, "rb") as fh:
            head = fh.read(16)
        return {"lossless": head[12:16] == b"VP8L"}
    if fmt == "TIFF":
        return {"compression": img.info.get("compression", "raw")}
    if fmt == "PNG":
        phys = _png_chunk(path, b"pHYs")
        return {"phys": phys} if phys else {}
    return {}


def _png_chunk(path: Path, kind: bytes) -> bytes | None:
    """The data of a PNG file's first ``kind`` chunk before its pixels (IDAT), or None."""
    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = fh.read(8)
            if len(head) < 8 or head[4:] == b"IDAT":
                return None
            size = struct.unpack(">I", head[:4])[0]
            if head[4:] == kind:
                return fh.read(size)
            fh.seek(size + 4, io.SEEK_CUR)


def _with_png_chunks(png: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """``png`` with ``chunks`` (type, data) inserted after its header chunk (IHDR: 8 + 25 bytes), CRCs computed."""
    extra = b"".join(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
                     for kind, data in chunks)
    return png[:33] + extra + png[33:]


def read_photo(path: str | Path) -> Photo:
    """Read a photo (every page of a multi-page TIFF); raise `MediaError` with an actionable line if unusable."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format
                if fmt not in PHOTO_FORMATS:
                    raise MediaError(f"{path.name}: {fmt} images are not supported; convert to JPEG or PNG")
                n_images = getattr(img, "n_frames", 1)
                if n_images > 1 and fmt not in ("MPO", "TIFF"):
                    raise MediaError(f"{path.name}: animated {fmt} is not supported; convert it to a video (MP4) first")
                icc = img.info.get("icc_profile")
                exif = img.info.get("exif")
                encoding = _encoding(img, path)
                mode = _mode_family(img)
                pages, turns = [], []
                for index in range(n_images if fmt == "TIFF" else 1):
                    img.seek(index)
                    turns.append(int(img.getexif().get(0x0112, 1) or 1))
                    page = ImageOps.exif_transpose(img)
                    page.load()
                    pages.append(page)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(f"{path.name}: declared image size is too large (over {MAX_PHOTO_PIXELS // 1_000_000} "
                         "megapixels); likely corrupt or a decompression bomb") from None
    except UnidentifiedImageError:
        raise MediaError(f"{path.name}: not an image anonlab can read") from None
    except FileNotFoundError:
        raise MediaError(f"{path.name}: file not found") from None
    except PermissionError:
        raise MediaError(f"{path.name}: permission denied; check the file's access rights") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError(f"{path.name}: the image is truncated or corrupt ({exc})") from None
    if len({p.size for p in pages}) > 1:
        raise MediaError(f"{path.name}: its {len(pages)} pages have different sizes; anonlab masks multi-page "
                         "TIFFs whose pages share one size: split the pages into separate files first")
    first = pages[0]
    alpha = None
    if first.mode in ("RGBA", "LA", "PA") or (first.mode == "P" and "transparency" in first.info):
        alpha = np.asarray(first.convert("RGBA"))[:, :, 3].copy()
    images = [_bgr(p) for p in pages]
    deep = [_deep(p) for p in pages] if mode in ("I;16", "CMYK") else []
    if mode == "RGB;16":
        deep = _deep_colour(path, turns, images)
        if deep is None:  # OpenCV read something else than Pillow: write the 8-bit view (verify says so)
            mode, deep = "RGB", []
    return Photo(image=images[0], format=fmt, alpha=alpha, icc_profile=icc, exif=exif, pages=images, mode=mode,
                 encoding=encoding, dropped=n_images - 1 if fmt == "MPO" else 0, deep=deep)


def _region(shape: tuple[int, int], boxes: np.ndarray | None) -> np.ndarray:
    """``(H, W)`` bool: inside any of ``boxes`` (``(N, 4)`` x1, y1, x2, y2 pixels, outward to whole pixels);
    None: the whole page."""
    region = np.zeros(shape, bool)
    if boxes is None:
        region[:] = True
        return region
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        region[max(int(np.floor(y1)), 0):max(int(np.ceil(y2)), 0), max(int(np.floor(x1)), 0):max(int(np.ceil(x2)), 0)] = True
    return region


def _deep_page(photo: Photo, k: int, image: np.ndarray, boxes: np.ndarray | None) -> Image.Image:
    """Page ``k`` in its deep mode: its own values, and inside ``boxes`` the masked 8-bit ``image`` converted
    (grey to 16 bit by the view's scale; RGB to CMYK by Pillow's formula, C = 255 - R ... K = 0, the inverse of
    the conversion that made the view)."""
    src, scale = photo.deep[k]
    out = src.copy()
    region = _region(src.shape[:2], boxes)
    rgb = image[region][:, ::-1].astype(np.float64)  # (N, 3)
    if photo.mode == "CMYK":
        out[region] = np.column_stack([255.0 - rgb, np.zeros(len(rgb))]).astype(np.uint8)
        return Image.frombytes("CMYK", (out.shape[1], out.shape[0]), out.tobytes())
    grey = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's convert("L")
    out[region] = np.clip(np.rint(grey * scale), 0, 65535).astype(np.uint16)
    return Image.fromarray(out)


def _pil(photo: Photo, image: np.ndarray, fmt: str, k: int = 0, boxes=None) -> Image.Image:
    if photo.deep and k < len(photo.deep) and photo.deep[k] is not None and fmt in _DEEP_FORMATS.get(photo.mode, ()) \
            and photo.deep[k][0].shape[:2] == image.shape[:2]:
        return _deep_page(photo, k, image, boxes)
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    if photo.alpha is not None and fmt in ("PNG", "WEBP", "TIFF") and photo.alpha.shape == image.shape[:2]:
        if photo.mode == "L" and fmt != "WEBP":  # grey with alpha stays LA (WebP holds RGBA only)
            return Image.merge("LA", (Image.fromarray(rgb).convert("L"), Image.fromarray(photo.alpha)))
        return Image.fromarray(np.dstack([rgb, photo.alpha]))
    img = Image.fromarray(rgb)
    if photo.mode in ("L", "I;16") or (photo.mode == "1" and fmt not in ("TIFF", "PNG", "BMP")):
        return img.convert("L")
    if photo.mode == "1":  # a bilevel scan stays bilevel (and fax-compressible): threshold, no dithering
        return img.convert("L").point(lambda v: 255 if v >= 128 else 0, mode="1")
    return img


#: Formats that hold each deep mode (Pillow's writers); another output format gets the 8-bit view.
_DEEP_FORMATS = {"I;16": ("PNG", "TIFF"), "CMYK": ("JPEG", "TIFF")}

#: OpenCV's TIFF compression codes for Pillow's names (16-bit colour TIFFs are written by OpenCV).
_CV_TIFF_COMPRESSION = {"raw": 1, "tiff_lzw": 5, "tiff_adobe_deflate": 8, "packbits": 32773, "tiff_deflate": 32946}


def _deep_colour_bytes(photo: Photo, pages: list, fmt: str, changed: list) -> bytes | None:
    """16-bit colour pages (``photo.mode`` "RGB;16") encoded as ``fmt`` by OpenCV: each page's own values, and
    inside ``changed`` boxes the masked 8-bit view × 257; PNG with the source's ICC profile and pixel density.
    None where this cannot be written whole (another format, pages of another size, a TIFF with an ICC
    profile: OpenCV writes none, and colours that display differently cost more than 8 bits; ``verify`` then
    reports the depth lost)."""
    import cv2

    if fmt not in ("PNG", "TIFF") or (fmt == "PNG" and len(pages) > 1) or (fmt == "TIFF" and photo.icc_profile) \
            or len(photo.deep) != len(pages) \
            or any(d is None or d[0].shape[:2] != p.shape[:2] for d, p in zip(photo.deep, pages)):
        return None
    arrays = []
    for k, page in enumerate(pages):
        src, scale = photo.deep[k]
        out = src.copy()
        region = _region(src.shape[:2], changed[k] if k < len(changed) else None)
        out[region, :3] = page[region].astype(np.uint16) * int(scale)  # 255 -> 65535
        arrays.append(out)
    if fmt == "PNG":
        ok, buf = cv2.imencode(".png", arrays[0], [cv2.IMWRITE_PNG_COMPRESSION, 6])  # Pillow's default level
        chunks = []
        if photo.icc_profile:
            chunks.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(photo.icc_profile)))
        if photo.encoding.get("phys"):
            chunks.append((b"pHYs", photo.encoding["phys"]))
        return _with_png_chunks(buf.tobytes(), chunks) if ok else None
    code = _CV_TIFF_COMPRESSION.get(photo.encoding.get("compression", "tiff_lzw"), 5)
    ok, buf = cv2.imencodemulti(".tiff", arrays, [cv2.IMWRITE_TIFF_COMPRESSION, code])
    return buf.tobytes() if ok else None


def photo_bytes(photo: Photo, image: np.ndarray | list, fmt: str, *, keep_metadata: bool = False,
                quality: int | None = None, changed: list | None = None) -> bytes:
    """Encode ``image`` (BGR, or a list of pages) as ``fmt``, in the source's encoding; metadata only if asked.

    Args:
        quality: JPEG/WebP/HEIF quality 1-95; None keeps the source JPEG's tables (others: 95 for lossy WebP
            and HEIF, whose source quality cannot be read back).
        changed: per page, the boxes (``(N, 4)`` x1, y1, x2, y2 pixels) where ``image`` may differ from the
            source, or None for the whole page (the default for every page): a 16-bit or CMYK page keeps its
            own values outside them.
    """
    fmt = SAVE_FORMAT.get(fmt, fmt)
    pages = image if isinstance(image, list) else [image]
    changed = list(changed) if changed is not None else [None] * len(pages)
    if photo.mode == "RGB;16":
        data = _deep_colour_bytes(photo, pages, fmt, changed)
        if data is not None:
            return data
    imgs = [_pil(photo, p, fmt, k, changed[k] if k < len(changed) else None) for k, p in enumerate(pages)]
    params: dict = {}
    if photo.icc_profile:
        params["icc_profile"] = photo.icc_profile
    if keep_metadata and photo.exif:
        exif = Image.Exif()
        exif.load(photo.exif)
        exif[0x0112] = 1  # pixels are already upright
        params["exif"] = exif.tobytes()
    enc = photo.encoding if photo.format in (fmt, "MPO" if fmt == "JPEG" else fmt) else {}
    if fmt == "JPEG":
        if quality is None and enc.get("qtables"):
            params["qtables"] = enc["qtables"]
            if "subsampling" in enc:
                params["subsampling"] = enc["subsampling"]
        else:
            params["quality"] = quality or 95
        params["progressive"] = bool(enc.get("progressive"))
    elif fmt == "WEBP":
        if enc.get("lossless"):
            params["lossless"] = True
        else:
            params["quality"] = quality or 95
    elif fmt == "HEIF":
        params["quality"] = quality or 95
    elif fmt == "PNG" and enc.get("phys"):  # pixel density (print size) or pixel aspect, as the source had it
        info = PngImagePlugin.PngInfo()
        info.add(b"pHYs", enc["phys"])
        params["pnginfo"] = info
    elif fmt == "TIFF":
        compression = enc.get("compression", "tiff_lzw")
        if compression in ("group3", "group4", "tiff_ccitt") and imgs[0].mode != "1":
            compression = "tiff_lzw"
        params["compression"] = compression
    if len(imgs) > 1:
        if fmt != "TIFF":
            raise OutputError(f"a {len(imgs)}-page image can only be written as TIFF; name a .tif output")
        params.update(save_all=True, append_images=imgs[1:])
    buf = io.BytesIO()
    imgs[0].save(buf, format=fmt, **params)
    return buf.getvalue()


#: Photo formats anonlab writes, by extension (Pillow's writers).
WRITABLE_PHOTO_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif"}


def check_photo_output(dst: str | Path) -> None:
    """`OutputError` in one line if ``dst``'s extension does not name a photo format anonlab writes."""
    dst = Path(dst)
    ext = dst.suffix.lower()
    if ext not in WRITABLE_PHOTO_EXTENSIONS or ext not in Image.registered_extensions():
        known = ", ".join(sorted(e for e in WRITABLE_PHOTO_EXTENSIONS if e in Image.registered_extensions()))
        raise OutputError(f"{dst.name}: a photo is written as {known}; choose one of these extensions")


def write_photo(photo: Photo, image: np.ndarray | list, dst: str | Path, *, keep_metadata: bool = False,
                jpeg_quality: int | None = None, changed: list | None = None) -> None:
    """Write ``image`` (or every page) to ``dst`` in the format its extension names (callers use `atomic_output`);
    ``changed``: where each page may differ from the source (`photo_bytes`).

    Raises:
        OutputError: the extension names no writable format, or writing failed.
    """
    dst = Path(dst)
    ext = dst.suffix.lower()
    fmt = Image.registered_extensions().get(ext, photo.format)
    try:
        data = photo_bytes(photo, image, fmt, keep_metadata=keep_metadata, quality=jpeg_quality, changed=changed)
        dst.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"{dst.name}: writing failed ({exc.strerror or exc})") from None
    except (KeyError, ValueError) as exc:
        raise OutputError(f"{dst.name}: cannot write this format ({exc})") from None
