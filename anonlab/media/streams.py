"""What a video stream is (`VideoProps`) and how anonlab writes its masked copy (`EncodePlan`).

A faithful export keeps every property a player uses, not only size and timing: bit depth, chroma
subsampling, colour primaries / transfer / matrix / range, HDR mastering and light-level metadata, the sample
aspect ratio, field order and rotation (measured on real inputs: an HLG phone clip written as untagged 8-bit
H.264 plays visibly darker; an anamorphic DV clip without its SAR plays squeezed). `probe_video` reads them
once with PyAV; `plan_video` decides, from them and the output's extension, which container, encoder, pixel
format and options reproduce them; `anonlab.report.verify` compares the two files property by property.

Choices (the README's container table says the same):

* **8-bit sources → H.264** (libx264), the codec every browser, phone and editor plays, in the source's
  chroma subsampling (4:2:0 stays 4:2:0; 4:2:2 and 4:4:4 sources come from production cameras and keep it).
* **10-bit and 12-bit sources → HEVC** (libx265, Main 10 / Main 12 / RExt), tagged ``hvc1`` in MP4/MOV: the
  codec phones record HDR in and the one Apple players and hardware decoders play at 10 bit. H.264 High 10
  exists but no browser or phone decodes it.
* **WebM → VP9** (libvpx-vp9) for 8-bit sources; this libvpx has no high-bit-depth build, so 10-bit sources
  go to **AV1** (SVT-AV1, 4:2:0), which WebM also holds. Audio keeps its codec (copied, or re-encoded in it
  where ranges are redacted), so the source's audio must be Opus or Vorbis (anything else is refused before
  work starts: name an ``.mkv`` output instead).
* **Odd frame sizes**: H.264 and HEVC crop 4:2:0 pictures in steps of two pixels (the SPS cropping unit is
  one chroma sample), so an odd width or height cannot be written in 4:2:0 by them; padding and cropping back
  in the bitstream cannot reach an odd size either. Such 8-bit sources go to **VP9**, which codes any size
  in 4:2:0 (browsers and Android play it in MP4, MKV and WebM); 10-bit ones to HEVC 4:4:4 (exact size).
* **Interlaced sources** are encoded as interlaced (x264 ``tff``/``bff``) with the source's field order, so
  each field keeps its own instant; masks are drawn on the woven frame and so cover both fields.
* Inputs whose container anonlab cannot write (AVI, WMV, FLV, MPEG-PS...) get a Matroska output by default
  (`default_video_suffix`), which holds their audio as it is.

Colour codes are FFmpeg's (``AVCOL_PRI_*``, ``AVCOL_TRC_*``, ``AVCOL_SPC_*``, ``AVCOL_RANGE_*``);
`COLOR_NAMES` gives the names ffprobe prints.
"""

from __future__ import annotations

import ctypes
import io
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from anonlab.errors import MediaError, OutputError

#: ffprobe's names for FFmpeg's colour codes (the common ones; other codes print as numbers).
COLOR_NAMES = {
    "primaries": {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
                  8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"},
    "transfer": {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
                 8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084",
                 18: "arib-std-b67"},
    "matrix": {0: "gbr", 1: "bt709", 2: "unknown", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc",
               10: "bt2020c", 14: "ictcp"},
    "range": {0: "unknown", 1: "tv", 2: "pc"},
}
FIELD_ORDERS = {0: "unknown", 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}
#: Field orders whose first field is the top one (x264 ``tff``); the others are bottom first.
TOP_FIRST = {"tt", "tb"}

#: Output extension -> FFmpeg muxer. Other extensions are refused (see `container_for`).
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
              ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".3gp": "3gp"}
#: Audio codecs MPEG-TS carries (its muxer has no codec table to ask).
TS_AUDIO = {"aac", "mp2", "mp3", "ac3", "eac3", "opus", "dts", "truehd", "pcm_bluray"}
#: Video codecs each muxer is asked to take (the others' tables are read from FFmpeg).
TS_VIDEO = {"h264", "hevc"}

_UNSPECIFIED = 2  # AVCOL_*_UNSPECIFIED for primaries, transfer and matrix


@dataclass(frozen=True)
class HdrMetadata:
    """Static HDR metadata (SMPTE ST 2086 mastering display, CTA-861.3 content light level), if present.

    Chromaticities are CIE 1931 xy (0..1); luminances in cd/m². ``primaries`` is ((Rx, Ry), (Gx, Gy),
    (Bx, By)).
    """

    primaries: tuple[tuple[float, float], ...] | None = None
    white_point: tuple[float, float] | None = None
    min_luminance: float | None = None
    max_luminance: float | None = None
    max_cll: int | None = None
    max_fall: int | None = None

    def x265_params(self) -> dict[str, str]:
        """x265's ``master-display`` (0.00002 xy units, 0.0001 cd/m² units) and ``max-cll`` parameters."""
        out = {}
        if self.primaries and self.white_point and self.max_luminance is not None:
            (rx, ry), (gx, gy), (bx, by) = self.primaries
            wx, wy = self.white_point
            u = lambda v: int(round(v * 50000))  # noqa: E731
            out["master-display"] = (f"G({u(gx)},{u(gy)})B({u(bx)},{u(by)})R({u(rx)},{u(ry)})WP({u(wx)},{u(wy)})"
                                     f"L({int(round(self.max_luminance * 10000))},"
                                     f"{int(round((self.min_luminance or 0) * 10000))})")
        if self.max_cll is not None:
            out["max-cll"] = f"{self.max_cll},{self.max_fall or 0}"
        return out


def _rational(buf: bytes, offset: int) -> float:
    num, den = ctypes.c_int.from_buffer_copy(buf, offset).value, ctypes.c_int.from_buffer_copy(buf, offset + 4).value
    return num / den if den else 0.0


def hdr_metadata(frame: av.VideoFrame) -> HdrMetadata | None:
    """The static HDR metadata a decoded frame carries as side data, or None.

    Layouts are FFmpeg's ``AVMasteringDisplayMetadata`` (3x2 + 2 + 2 AVRationals, then ``has_primaries`` and
    ``has_luminance`` ints) and ``AVContentLightMetadata`` (two unsigned ints).
    """
    found: dict = {}
    side = frame.side_data
    for i in range(len(side)):
        sd = side[i]
        name = getattr(sd.type, "name", str(sd.type))
        raw = ctypes.string_at(sd.buffer_ptr, sd.buffer_size)
        if name == "MASTERING_DISPLAY_METADATA" and len(raw) >= 88:
            has_primaries, has_luminance = (ctypes.c_int.from_buffer_copy(raw, 80).value,
                                            ctypes.c_int.from_buffer_copy(raw, 84).value)
            if has_primaries:
                found["primaries"] = tuple((_rational(raw, 16 * i), _rational(raw, 16 * i + 8)) for i in range(3))
                found["white_point"] = (_rational(raw, 48), _rational(raw, 56))
            if has_luminance:
                found["min_luminance"], found["max_luminance"] = _rational(raw, 64), _rational(raw, 72)
        elif name == "CONTENT_LIGHT_LEVEL" and len(raw) >= 8:
            cll, fall = ctypes.c_uint.from_buffer_copy(raw, 0).value, ctypes.c_uint.from_buffer_copy(raw, 4).value
            if cll or fall:  # 0 and 0 is CTA-861.3's "unknown", what x265's HDR10 signalling writes when none is given
                found["max_cll"], found["max_fall"] = cll, fall
    return HdrMetadata(**found) if found else None


def pixel_layout(pix_fmt: str) -> tuple[int, str]:
    """``(bit depth, chroma)`` of a pixel format: chroma ``"420"``, ``"422"``, ``"444"``, ``"411"``, ``"440"``,
    ``"410"``, ``"400"`` (grey) or ``"rgb"``."""
    fmt = av.VideoFormat(pix_fmt)
    depth = max(c.bits for c in fmt.components)
    if fmt.is_rgb or pix_fmt.startswith(("gbr", "rgb", "bgr", "argb", "abgr", "rgba", "bgra", "pal")):
        return depth, "rgb"
    if len(fmt.components) < 3:
        return depth, "400"
    sx, sy = 16 // max(1, fmt.chroma_width(16)), 16 // max(1, fmt.chroma_height(16))
    chroma = {(1, 1): "444", (2, 1): "422", (2, 2): "420", (4, 1): "411", (1, 2): "440", (4, 4): "410"}
    return depth, chroma.get((sx, sy), "420")


@dataclass(frozen=True)
class VideoProps:
    """The properties of a video stream that a player uses, as decoded (coded orientation).

    Attributes:
        codec: FFmpeg decoder name (``h264``, ``hevc``, ``vp9``...); ``profile`` as FFmpeg names it.
        pix_fmt: decoded pixel format (``yuv420p10le``...); ``bit_depth`` and ``chroma`` derived from it.
        width, height: coded size in pixels (before the display rotation).
        sar: sample (pixel) aspect ratio; None when unknown or square-unspecified (0:1).
        field_order: ``progressive``, ``tt``, ``bb``, ``tb``, ``bt`` (FFmpeg's names), ``interlaced`` (the
            frames say interlaced, nothing says which field leads: each frame's own flag is followed) or
            ``unknown``.
        color_primaries, color_trc, colorspace, color_range: FFmpeg codes (2 / 0 = unspecified).
        hdr: static HDR metadata of the first frame, if any.
        rotation: display rotation in degrees (counter-clockwise, as the display matrix says).
    """

    codec: str
    profile: str | None
    pix_fmt: str
    bit_depth: int
    chroma: str
    width: int
    height: int
    sar: Fraction | None
    field_order: str
    color_primaries: int
    color_trc: int
    colorspace: int
    color_range: int
    hdr: HdrMetadata | None = None
    rotation: int = 0

    def summary(self) -> dict:
        """The properties as names (ffprobe's), for reports and `anonlab.report.verify` (no coordinates)."""
        return {
            "codec": self.codec, "profile": self.profile, "pix_fmt": self.pix_fmt, "bit_depth": self.bit_depth,
            "chroma": self.chroma, "coded_size": f"{self.width}x{self.height}",
            "sar": f"{self.sar.numerator}:{self.sar.denominator}" if self.sar else "unknown",
            "field_order": self.field_order,
            "color_primaries": COLOR_NAMES["primaries"].get(self.color_primaries, str(self.color_primaries)),
            "color_transfer": COLOR_NAMES["transfer"].get(self.color_trc, str(self.color_trc)),
            "color_matrix": COLOR_NAMES["matrix"].get(self.colorspace, str(self.colorspace)),
            "color_range": COLOR_NAMES["range"].get(self.color_range, str(self.color_range)),
            "hdr_mastering_display": bool(self.hdr and self.hdr.primaries),
            "hdr_content_light_level": bool(self.hdr and self.hdr.max_cll is not None),
            "rotation": self.rotation,
        }


def declared_colors(stream) -> tuple[int, int, int, int]:
    """The colour tags a video stream's headers declare: (primaries, transfer, matrix, range), FFmpeg codes.

    Read before any frame is decoded: some decoders overwrite them with their codec's implied default (the VP8
    and MJPEG decoders say BT.601 whatever the WebM or MOV header declares), while players and ffprobe read the
    header, and the pixels were coded the way the header says.
    """
    ctx = stream.codec_context
    tags = [int(v or _UNSPECIFIED) for v in (ctx.color_primaries, ctx.color_trc, ctx.colorspace)]  # 0: reserved
    return (*tags, int(ctx.color_range or 0))


def props_from(stream, first_frame, declared: tuple[int, int, int, int] | None = None) -> VideoProps:
    """`VideoProps` of an opened PyAV video ``stream`` whose first decoded frame is ``first_frame``.

    ``declared``: `declared_colors` of the stream, read before decoding; a tag it specifies wins over the
    decoder's (default: the codec context's after decoding, then the frame's).
    """
    ctx = stream.codec_context
    pix_fmt = first_frame.format.name
    depth, chroma = pixel_layout(pix_fmt)
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
    sar = Fraction(sar) if sar and Fraction(sar) > 0 else None
    field_order = FIELD_ORDERS.get(int(ctx.field_order or 0), "unknown")
    if field_order == "unknown":  # no container/parser flag: the decoder's word on the first frame
        if not first_frame.interlaced_frame:
            field_order = "progressive"
        else:  # DV is bottom field first by its standard (IEC 61834); otherwise the frames' own flags lead
            field_order = "bb" if ctx.name == "dvvideo" else "interlaced"

    head = declared or (_UNSPECIFIED, _UNSPECIFIED, _UNSPECIFIED, 0)

    def pick(head_value, frame_value, ctx_value, unspecified):
        # The headers' declaration first (what players read), then the decoder's word on the first frame, then
        # the codec context as decoding left it.
        for v in (head_value, frame_value, ctx_value):
            if v is not None and int(v) != unspecified:
                return int(v)
        return unspecified

    range_ = pick(head[3], first_frame.color_range, ctx.color_range, 0)
    if range_ == 0 and pix_fmt.startswith("yuvj"):  # JPEG-range formats are full range by definition
        range_ = 2
    return VideoProps(
        codec=ctx.name, profile=ctx.profile, pix_fmt=pix_fmt, bit_depth=depth, chroma=chroma,
        width=first_frame.width, height=first_frame.height, sar=sar, field_order=field_order,
        color_primaries=pick(head[0], first_frame.color_primaries, ctx.color_primaries, _UNSPECIFIED),
        color_trc=pick(head[1], first_frame.color_trc, ctx.color_trc, _UNSPECIFIED),
        colorspace=pick(head[2], first_frame.colorspace, ctx.colorspace, _UNSPECIFIED),
        color_range=range_, hdr=hdr_metadata(first_frame), rotation=int(first_frame.rotation or 0) % 360,
    )


def probe_video(path: str | Path) -> VideoProps:
    """`VideoProps` of the first video stream of ``path``; `MediaError` if it has none or cannot be decoded."""
    path = Path(path)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise MediaError(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            declared = declared_colors(stream)
            for frame in container.decode(stream):
                return props_from(stream, frame, declared)
    except av.FFmpegError as exc:
        raise MediaError(f"{path.name}: cannot be read as video ({exc.strerror or 'ffmpeg error'})") from None
    raise MediaError(f"{path.name}: the video stream holds no decodable frame")


# --- output ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodePlan:
    """How the masked copy of a video is written.

    Attributes:
        container: FFmpeg muxer (``mp4``, ``mov``, ``matroska``, ``webm``, ``mpegts``, ``3gp``).
        encoder: ``libx264``, ``libx265``, ``libvpx-vp9`` or ``libsvtav1``; ``codec`` the stream's codec name.
        pix_fmt: pixel format handed to the encoder (the source's layout and depth, see the module doc).
        options: encoder options (``crf``, presets, x264/x265 parameters for field order and HDR).
        codec_tag: fourcc forced in MP4/MOV (``hvc1`` for HEVC, what QuickTime requires), or None.
        interlaced: True when the source's field order is encoded (``top_first`` says which field leads).
        reasons: one line per choice that differs from "same as the source" (for the audit report).
    """

    container: str
    encoder: str
    codec: str
    pix_fmt: str
    options: dict = field(default_factory=dict)
    codec_tag: str | None = None
    interlaced: bool = False
    top_first: bool = True
    reasons: tuple[str, ...] = ()

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "options"}


def container_for(dst: str | Path) -> str:
    """The muxer for an output path, by extension; `OutputError` (one line) for extensions anonlab cannot write."""
    suffix = Path(dst).suffix.lower()
    if suffix not in CONTAINERS:
        known = ", ".join(sorted(CONTAINERS))
        raise OutputError(f"{Path(dst).name}: anonlab writes videos as {known}; choose one of these extensions")
    return CONTAINERS[suffix]


def default_video_suffix(src: str | Path) -> str:
    """The output extension for a video input: its own when anonlab can write that container, else ``.mkv``."""
    suffix = Path(src).suffix
    return suffix if suffix.lower() in CONTAINERS else ".mkv"


_ENCODERS = {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9", "libsvtav1": "av1", "prores_ks": "prores",
             "ffv1": "ffv1"}

#: ProRes profiles as FFmpeg's decoder names them, and prores_ks's ``profile`` numbers.
PRORES_PROFILES = {"Proxy": 0, "LT": 1, "Standard": 2, "HQ": 3, "4444": 4, "XQ": 5, "4444XQ": 5}
#: Pixel formats FFV1 writes (FFmpeg's encoder), so a lossless archive stays lossless in its own format.
FFV1_PIX_FMTS = {"yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le",
                 "yuv422p12le", "yuv444p12le", "yuv420p16le", "yuv422p16le", "yuv444p16le"}


def _production_plan(props: VideoProps, container: str) -> tuple[str, str, dict, list[str]] | None:
    """``(encoder, pix_fmt, options, reasons)`` that keep an editing or archive codec, or None.

    A ProRes master is made to be edited: written as HEVC 4:2:2 10-bit (what the bit-depth rule gives) it plays
    in almost no editor, so it stays ProRes in its profile (prores_ks, MOV or Matroska; 10 bits, this encoder's
    only depth). An FFV1 archive copy is lossless: it stays FFV1 in its own pixel format (Matroska), so outside
    the masks it keeps the source's values exactly. Both are intra-only, so nothing else of the plan changes.
    """
    if props.codec == "prores" and container in ("mov", "matroska") and props.chroma in ("422", "444"):
        reasons = []  # 4444 is coded from 10 bits a sample, and FFmpeg decodes every 4444 stream as 12 bit
        if props.pix_fmt.startswith("yuva"):
            reasons.append("ProRes alpha channel not kept")
        profile = PRORES_PROFILES.get(props.profile or "", 4 if props.chroma == "444" else 3)
        # apl0: QuickTime and editors check the vendor; bits_per_mb stays the profile's own (its data rate)
        return "prores_ks", f"yuv{props.chroma}p10le", {"profile": str(profile), "vendor": "apl0"}, reasons
    if props.codec == "ffv1" and container == "matroska" and props.pix_fmt in FFV1_PIX_FMTS:
        # version 3 with per-slice CRCs, as archives write it (the FFV1 spec's recommendation, RFC 9043)
        return "ffv1", props.pix_fmt, {"level": "3", "slicecrc": "1", "g": "1", "slices": "4"}, []
    return None


#: x264's preset and the parameters added to it, chosen by measurement (CRF 18, mbtree=0, the 150-frame
#: facenet clip; ms a frame, one encode alone, load 3.4-3.8 on 2 cores; sizes are exact):
#:
#:     preset                 720p ms   720p MB   1080p ms   1080p MB
#:     veryfast (until now)     24.7      2.64      53.0       5.48
#:     superfast + subme=2      17.6      2.77      40.7       5.51
#:     superfast                14.7      3.29      30.3       6.13
#:
#: superfast with veryfast's sub-pixel refinement (it differs from veryfast by the diamond motion search, no
#: lookahead and no 8x8 inter partitions) costs 29 % less at 720p and 23 % less at 1080p for files 5 % and
#: 0.5 % larger; plain superfast saves a further 3-10 ms for files 12-25 % larger. Deterministic as before
#: (no MB-tree, slice threads).
X264_PRESET = "superfast"
X264_PARAMS = ("subme=2",)


def plan_video(props: VideoProps, dst: str | Path, *, crf: int = 18, preset: str | None = None) -> EncodePlan:
    """Choose container, encoder, pixel format and options that keep ``props`` (see the module doc).

    ``preset``: the x264 / x265 preset; None: the measured default (`X264_PRESET` with `X264_PARAMS`, x265's
    ``superfast``).

    Raises:
        OutputError: the output extension is not one anonlab writes, or the source cannot be kept in it
            (e.g. 10-bit 4:2:2 in WebM, an odd-sized picture in MPEG-TS); the message names a container
            that can.
    """
    name = Path(dst).name
    container = container_for(dst)
    depth = 8 if props.bit_depth <= 8 else (10 if props.bit_depth <= 10 else 12)
    reasons: list[str] = []
    chroma = props.chroma
    if chroma in ("411", "410"):
        chroma = "420"
        reasons.append(f"chroma {props.chroma} written as 4:2:0 (no encoder here writes {props.chroma})")
    elif chroma == "440":
        chroma = "444"
        reasons.append("chroma 4:4:0 written as 4:4:4 (no encoder here writes 4:4:0)")
    elif chroma == "rgb":
        chroma = "444"
        reasons.append("RGB source written as YUV 4:4:4 (full chroma resolution)")
    elif chroma == "400":
        chroma = "420"
        reasons.append("greyscale source written as 4:2:0 with neutral chroma (players show grey)")
    odd_w, odd_h = props.width % 2, props.height % 2
    odd = (chroma == "420" and (odd_w or odd_h)) or (chroma == "422" and odd_w)
    interlaced = props.field_order in ("tt", "bb", "tb", "bt", "interlaced")
    top_first = props.field_order in TOP_FIRST or props.field_order == "interlaced"

    production = _production_plan(props, container)
    if production is not None:
        encoder, pix_fmt, options, more = production
        interlaced = interlaced and encoder == "prores_ks"  # FFV1 codes frames; ProRes codes fields (ildct)
        if interlaced:
            options["flags"] = "+ildct"
        elif props.field_order in ("tt", "bb", "tb", "bt", "interlaced"):
            more.append(f"field order {props.field_order} not kept: {encoder} codes frames here")
        return EncodePlan(container=container, encoder=encoder, codec=_ENCODERS[encoder], pix_fmt=pix_fmt,
                          options=options, interlaced=interlaced, top_first=top_first, reasons=tuple(reasons + more))
    if container == "webm":
        if depth == 8:
            encoder = "libvpx-vp9"
        elif chroma == "420":
            encoder = "libsvtav1"
            depth = 10
            reasons.append("WebM high bit depth written as AV1 10-bit (this VP9 encoder is 8-bit only)")
        else:
            raise OutputError(f"{name}: a {props.bit_depth}-bit {props.chroma} source cannot be kept in WebM "
                              "here; choose an .mkv or .mp4 output")
    elif depth == 8:
        encoder = "libvpx-vp9" if odd else "libx264"
        if odd:
            reasons.append(f"odd frame size {props.width}x{props.height} in {chroma}: VP9 (H.264 cannot code it)")
    else:
        encoder = "libx265"
        if odd:
            chroma = "444"
            reasons.append(f"odd frame size {props.width}x{props.height} at {depth} bit: HEVC 4:4:4 (exact size)")
    codec = _ENCODERS[encoder]
    if container == "mpegts" and codec not in TS_VIDEO:
        raise OutputError(f"{name}: this source needs {codec.upper()}, which MPEG-TS cannot hold; "
                          "choose an .mkv or .mp4 output")
    if container == "3gp" and codec != "h264":
        raise OutputError(f"{name}: this source needs {codec.upper()}, which 3GP cannot hold; choose an .mp4 output")
    if interlaced and encoder != "libx264":
        reasons.append(f"field order {props.field_order} not kept: {codec} is coded progressive here")
        interlaced = False

    suffix = "" if depth == 8 else f"{depth}le"
    pix_fmt = f"yuv{chroma}p{suffix}"
    options: dict[str, str] = {}
    if encoder == "libx264":
        # mbtree=0: with MB-tree rate control this x264 (PyAV 18's) gives different bitstreams for the same
        # frames, even single-threaded on an idle machine (8 of 150 encodes of 12 identical frames differed;
        # with mbtree=0 or without assembly, 1 of 150): the same case file must render to the same bytes
        # (resumed batches rest on it). The cost, measured at CRF 18 veryfast: files 11 % larger on a 720p crowd
        # clip, 43 % on the static synthetic sample. x264 without its AVX-512 code (`asm=` listing the CPU's
        # other features) kept MB-tree and was deterministic too (150 of 150), but forcing CPU features x264
        # does not detect itself crashes CPUs that lack them: that needs our own feature detection first.
        params = ["mbtree=0"] + ([("tff" if top_first else "bff") + "=1"] if interlaced else [])
        if preset is None:
            params += X264_PARAMS
        # a53cc: x264 would copy the source's closed captions (which name people) into the output.
        options = {"crf": str(crf), "preset": preset or X264_PRESET, "a53cc": "0", "x264-params": ":".join(params)}
    elif encoder == "libx265":
        # One frame thread and no wavefront rows: x265's output must not depend on thread timing (the same
        # case file must render to the same bytes).
        params = {"log-level": "error", "frame-threads": "1", "wpp": "0", "pools": "1"}
        if props.hdr:
            params.update(props.hdr.x265_params())
            params["repeat-headers"] = "1"
        if props.color_trc == 16:  # PQ: HDR10 signalling
            params["hdr10"] = "1"
        # No captions and no Dolby Vision RPU copied from the source frames (the RPU describes unmasked pixels).
        options = {"crf": str(crf), "preset": preset or "superfast", "a53cc": "0",
                   "dolbyvision": "0", "x265-params": ":".join(f"{k}={v}" for k, v in params.items())}
    elif encoder == "libvpx-vp9":
        options = {"crf": str(crf + 12), "b": "0", "deadline": "good", "cpu-used": "5", "row-mt": "1"}
    elif encoder == "libsvtav1":
        options = {"crf": str(crf + 12), "preset": "10", "dolbyvision": "0"}
    tag = "hvc1" if codec == "hevc" and container in ("mp4", "mov") else None
    return EncodePlan(container=container, encoder=encoder, codec=codec, pix_fmt=pix_fmt, options=options,
                      codec_tag=tag, interlaced=interlaced, top_first=top_first, reasons=tuple(reasons))


def check_audio(src_audio_streams, container: str, dst: str | Path) -> None:
    """Refuse, in one line and before any work, audio that ``container`` cannot hold as it is.

    Audio is copied packet for packet, or, when ranges of it are redacted (`anonlab.media.audiotrack`),
    re-encoded in its own codec, so its codec must be one the muxer takes. Asked
    of FFmpeg itself by writing a header into memory; MPEG-TS, whose muxer has no codec table, by `TS_AUDIO`.
    """
    name = Path(dst).name
    for stream in src_audio_streams:
        codec = stream.codec_context.name
        if container == "mpegts":
            ok = codec in TS_AUDIO
        else:
            ok = _muxer_takes(container, stream)
        if not ok:
            hint = "an .mkv output" if container != "matroska" else "another container"
            raise OutputError(f"{name}: the source's {codec} audio cannot be copied into {container.upper()}; "
                              f"choose {hint} (audio keeps its codec)")


#: Stream tags a faithful export carries: the language players choose a track by. A stream's title or handler
#: name can name a person or a device ("Anna's iPhone"), so those go with the other tags.
CARRIED_STREAM_TAGS = ("language",)


def carry_stream_facts(istream, ostream) -> None:
    """Give an output stream (PyAV, before writing starts) the source stream's language tag and disposition
    (default, forced, hearing impaired, ...): players choose tracks by them (a newcomer's export turned an
    English sound track into "und", and Matroska tracks lost their default flag). No other tag is carried."""
    for key in CARRIED_STREAM_TAGS:
        value = istream.metadata.get(key)
        if value and value != "und":
            ostream.metadata[key] = value
    ostream.disposition = istream.disposition


def _muxer_takes(container: str, stream) -> bool:
    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format=container) as out:
            out.add_stream_from_template(stream)
            out.start_encoding()
    except (av.FFmpegError, ValueError):
        return False
    return True



def media_duration(reader, container) -> float:
    """Seconds from the video's frame 0 to the end of the longest stream (the audio ranges' upper bound), for a
    `anonlab.media.video.VideoReader` and its open container."""
    end = reader.duration
    if container.duration:  # microseconds (AV_TIME_BASE), from the container's start
        start = (container.start_time or 0) / 1e6
        end = max(end, container.duration / 1e6 + start - float(reader.pts[0] * reader.time_base))
    return end


def cut_short(reader, container) -> dict:
    """``{"cut_short": {"announced_s", "read_s"}}`` when the container announces more than the video's frames
    hold (`media_duration` over the frames' duration: by over a second and over a quarter), else ``{}``.

    A truncated Matroska file decodes without an error up to where it stops; the output then holds only that
    part, which the analyst must be told (seconds only, never content). The header's duration is the longest
    stream's, so a sound track much longer than the picture says the same; the warning names both causes. Whole
    files of the nine held-back kinds (ProRes, MPEG-2 TS, MJPEG AVI, VP8 WebM, HEVC, H.264 MKV, FFV1, AV1) hold
    what they announce to 0.01 s; the first 200 kB of a 2.0 s MKV hold 0.83 s.

    An MP4 or MOV file lists its frames in its header (the sample table): when more are listed than can be read
    or are hidden by its edit list (by over 2 and over 2 %), the file is cut off whatever the
    seconds say (a 3 s phone clip cut at 100 kB listed 65 frames and held 39: 1.30 s of the 2.17 s announced,
    under the rule above).
    """
    if not reader.n_frames:
        return {}
    announced, read = media_duration(reader, container), reader.duration
    listed = int(getattr(reader, "_stream", None) and reader._stream.frames or 0)
    if listed > reader.n_frames + getattr(reader, "discarded", 0) + max(2, 0.02 * listed):
        announced = max(announced, read * listed / reader.n_frames)
        return {"cut_short": {"announced_s": round(announced, 2), "read_s": round(read, 2),
                              "listed_frames": listed, "read_frames": int(reader.n_frames)}}
    if announced > read + max(1.0, 0.25 * announced):
        return {"cut_short": {"announced_s": round(announced, 2), "read_s": round(read, 2)}}
    return {}
