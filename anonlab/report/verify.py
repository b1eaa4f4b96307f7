"""Check that an output is a faithful, metadata-free copy of its input (the demo runs this).

It checks what the output keeps and drops, not whether its masks cover every person: that is the review's job
and ``anonymize --red-team``'s; it says so, and it says when the output is the input's very bytes (a copy passes
every property check and masks nothing).

``python -m anonlab.report.verify INPUT OUTPUT [--report REPORT.json]`` prints one line per property and exits
non-zero if any differs, naming it. Videos: frame count, timestamps, frame rate, displayed size, rotation,
codec and pixel format as `anonlab.media.streams.plan_video` chose them, bit depth, chroma subsampling, colour
primaries / transfer / matrix / range, HDR mastering display and content light level, sample aspect ratio,
field order, the audio streams' codec, sample rate, channels and duration, byte-identical audio packets, each
stream's language and disposition, and no identifying container tags. Photos: size and orientation, pages,
Pillow mode, alpha channel, JPEG quantisation tables and chroma subsampling, TIFF compression, WebP
losslessness, ICC profile, and no EXIF/GPS/XMP. Both: the picture is the right way round (not mirrored or
turned; `wrong_way`, on eight frames of a video); videos: each of those frames is its own source frame, not a
neighbour (`frame_shift`).

Redacted audio (``anonymize --audio mute|beep|voice``): the packets differ from the input's by design. They
pass as "audio redacted" only when the run's audit report is given (``--report``), the report is of this very
output (its sha256) and it says the audio was redacted; the report's mode, range count and seconds are
printed. Without it, different packets fail, as they always did: a changed sound track is never waved
through on the command line's word. The stream checks (codec, rate, channels, duration) apply either way; a
codec this FFmpeg cannot encode is expected as the one `anonlab.media.audiotrack.plan_audio_stream` chooses.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from anonlab.errors import AnonlabError
from anonlab.media import VideoReader, probe, read_photo, sha256_file
from anonlab.media.audiotrack import plan_audio_stream
from anonlab.media.streams import COLOR_NAMES, container_for, cut_short, plan_video

Check = tuple[str, bool, str]


def _audio_packets(path: Path) -> list[list[bytes]]:
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)
        if not streams:
            return []
        out: dict[int, list[bytes]] = {s.index: [] for s in streams}
        for pkt in c.demux(streams):
            if pkt.size:
                out[pkt.stream_index].append(bytes(pkt))
        return list(out.values())


def _audio_facts(path: Path) -> list[dict]:
    """Codec, sample rate, channels, layout and duration (seconds, from the packets' timestamps) of each audio
    stream, its frame size in samples (0 for PCM and for codecs whose frames vary: Opus, Vorbis), its longest
    packet (seconds) and the seconds its edit list discards (AAC priming)."""
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)
        facts = []
        for s in streams:
            ctx = s.codec_context
            facts.append({"codec": ctx.name, "rate": ctx.sample_rate, "channels": ctx.channels,
                          "layout": ctx.layout.name if ctx.layout is not None else "", "frame_size": ctx.frame_size or 0,
                          "first": None, "end": None, "discarded": 0.0, "packet_s": 0.0})
        index = {s.index: i for i, s in enumerate(streams)}
        if streams:
            for pkt in c.demux(streams):
                if pkt.pts is None or not pkt.size:
                    continue
                f, tb = facts[index[pkt.stream_index]], pkt.stream.time_base
                if pkt.is_discard:  # an edit list's priming or cut
                    f["discarded"] += float((pkt.duration or 0) * tb)
                    continue
                start, end = pkt.pts * tb, (pkt.pts + (pkt.duration or 0)) * tb
                f["packet_s"] = max(f["packet_s"], float((pkt.duration or 0) * tb))
                f["first"] = start if f["first"] is None else min(f["first"], start)
                f["end"] = end if f["end"] is None else max(f["end"], end)
        for f in facts:
            f["duration"] = float(f["end"] - f["first"]) if f["first"] is not None else 0.0
        return facts


def read_audio_record(report: Path, dst: Path) -> dict:
    """What the audit ``report`` says was done to ``dst``'s audio (its ``extra.audio``).

    Raises:
        AnonlabError: the report cannot be read, is not an anonlab report, or is of another output (sha256).
    """
    import json

    try:
        data = json.loads(Path(report).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise AnonlabError(f"{Path(report).name}: cannot be read as an anonlab report (JSON)") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("anonlab-report/"):
        raise AnonlabError(f"{Path(report).name}: not an anonlab report")
    if (data.get("output") or {}).get("sha256") != sha256_file(dst):
        raise AnonlabError(f"{Path(report).name}: is the report of another output than {dst.name} (sha256 differs)")
    audio = (data.get("extra") or {}).get("audio")
    return audio if isinstance(audio, dict) else {"mode": "keep"}


def audio_checks(src: Path, dst: Path, record: dict | None = None) -> list[Check]:
    """The audio streams: codec, rate, channels, duration kept, and the packets identical or, per ``record``
    (`read_audio_record`), redacted on purpose (see the module doc)."""
    fa, fb = _audio_facts(src), _audio_facts(dst)
    pa, pb = _audio_packets(src), _audio_packets(dst)
    redacted = record is not None and record.get("mode", "keep") != "keep"
    checks: list[Check] = [("audio streams", len(fa) == len(fb), f"{len(fa)} -> {len(fb)}")]
    if len(fa) != len(fb):
        return checks
    planned = []
    if fa and pa != pb:  # re-encoded: what the writer would have chosen for a codec without encoder
        with av.open(str(src)) as c:
            container = container_for(dst)
            planned = [plan_audio_stream(s, container) for s in c.streams.audio]
    for i, (a, b) in enumerate(zip(fa, fb)):
        tag = f"audio {i}: " if len(fa) > 1 else "audio "
        plan = planned[i] if planned else None
        # identical packets are the same codec whatever a container calls it (MP2 in MP4 reads back as MP3)
        codec_ok = (b["codec"] == a["codec"] or pa[i] == pb[i]
                    or (plan is not None and b["codec"] == plan.codec and plan.reasons))
        rate_ok = b["rate"] == a["rate"] or (plan is not None and b["rate"] == plan.rate and plan.reasons)
        # one codec frame: a re-encode ends on the codec's frame grid where the container cannot say otherwise.
        # Opus and Vorbis decoders state no frame size (0): their longest packet is one frame (a re-encoded Opus
        # track held the same 144,000 samples and its last packet said 7 ms where the source's said 20)
        slack = max(a["frame_size"] / max(a["rate"], 1), b["frame_size"] / max(b["rate"], 1), a["packet_s"],
                    b["packet_s"], 1 / max(b["rate"], 1)) + 1e-3
        # Matroska has no edit list: a copied AAC track keeps its priming frame as sound (FFmpeg does the same
        # and starts the video that much later, so the two stay in step)
        priming = a["discarded"] if not b["discarded"] else 0.0
        checks += [
            (tag + "codec", bool(codec_ok), f"{a['codec']} -> {b['codec']}"
             + (f" ({'; '.join(plan.reasons)})" if plan is not None and plan.reasons else "")),
            (tag + "sample rate", bool(rate_ok), f"{a['rate']} Hz -> {b['rate']} Hz"),
            (tag + "channels", (a["channels"], a["layout"]) == (b["channels"], b["layout"]),
             f"{a['channels']} ({a['layout']}) -> {b['channels']} ({b['layout']})"),
            (tag + "duration", -slack <= b["duration"] - a["duration"] <= slack + priming,
             f"{a['duration']:.3f}s -> {b['duration']:.3f}s"),
        ]
    summary = f"{len(pa)} stream(s), {sum(map(len, pa))} packets"
    if pa == pb:
        checks.append(("audio packets identical", True, summary))
    elif redacted:
        where = "the whole track" if record.get("whole_track") else f"{record.get('ranges', '?')} range(s)"
        checks.append(("audio redacted", True, f"{record['mode']} over {where}, {record.get('seconds', '?')} s, "
                                               f"as the report says"))
    else:
        hint = ("; the report says the audio was kept" if record is not None else
                "; if it was redacted on purpose, give the run's report: --report REPORT.json")
        checks.append(("audio packets identical", False, f"{summary}: they differ{hint}"))
    return checks


def _container_tags(path: Path) -> dict:
    with av.open(str(path)) as c:
        tags = dict(c.metadata)
        for s in c.streams:
            tags.update({f"{s.type}:{k}": v for k, v in s.metadata.items()})
    return tags


def _track_labels(path: Path) -> list[tuple[str, str, str]]:
    """The first video stream's and each audio stream's language and disposition flags, as players see them."""
    with av.open(str(path)) as c:
        streams = [*c.streams.video[:1], *c.streams.audio]
        flags = [{f.name for f in type(s.disposition) if f and f in s.disposition} for s in streams]
        for kind in ("video", "audio"):
            # A player plays the first stream of a kind that none marks default, and MP4 cannot say "none is":
            # its muxer marks the first (an MKV without default flags written as MP4 is the same to a player).
            mine = [f for s, f in zip(streams, flags) if s.type == kind]
            if mine and not any("default" in f for f in mine):
                mine[0].add("default")
        return [(s.type, s.metadata.get("language") or "und", "+".join(sorted(f)) or "none")
                for s, f in zip(streams, flags)]


def track_label_checks(src: Path, dst: Path) -> list[Check]:
    """Each kept stream's language tag and disposition (default, forced...): a player picks tracks by them."""
    a, b = _track_labels(src), _track_labels(dst)
    if len(a) != len(b):  # the stream count checks say which
        return []
    show = lambda labels: ", ".join(f"{kind} {lang}" for kind, lang, _ in labels)  # noqa: E731
    return [("stream languages", [x[1] for x in a] == [x[1] for x in b], f"{show(a)} -> {show(b)}"),
            ("stream dispositions", [x[2] for x in a] == [x[2] for x in b],
             f"{', '.join(x[2] for x in a)} -> {', '.join(x[2] for x in b)}")]


IDENTIFYING_TAGS = ("location", "com.apple.quicktime.location", "gps", "make", "model", "serial", "title",
                    "artist", "author", "comment", "description", "copyright", "creation_time")


def _same(name: str, a, b, show=str) -> Check:
    return (name, a == b, f"{show(a)} -> {show(b)}")


def _color(kind: str):
    return lambda code: COLOR_NAMES[kind].get(code, str(code))


def _sar(sar) -> str:
    return f"{sar.numerator}:{sar.denominator}" if sar else "unknown"


def stream_checks(a, b, dst: Path) -> list[Check]:
    """Property checks of two `VideoProps` (source ``a``, output ``b``); the plan says what ``b`` should be."""
    try:
        plan = plan_video(a, dst)
    except AnonlabError as exc:
        return [("output container", False, str(exc))]
    why = "; ".join(plan.reasons)
    planned_pix = plan.pix_fmt
    if plan.codec == "prores" and plan.pix_fmt.startswith("yuv444"):  # FFmpeg decodes ProRes 4444 as 12 bit
        planned_pix = "yuv444p12le"
    planned_depth = 8 if planned_pix.endswith("p") else int(planned_pix.split("p")[-1][:2])
    planned_chroma = planned_pix[3:6]
    checks = [
        ("codec", b.codec == plan.codec, f"{a.codec} -> {b.codec} (planned {plan.codec}{'; ' + why if why else ''})"),
        ("pixel format", _pix_fmt(b.pix_fmt) == _pix_fmt(planned_pix),
         f"{a.pix_fmt} -> {b.pix_fmt} (planned {planned_pix})"),
        ("bit depth", b.bit_depth == planned_depth and (planned_depth == a.bit_depth or bool(why)),
         f"{a.bit_depth} -> {b.bit_depth}"),
        ("chroma subsampling", b.chroma == planned_chroma and (planned_chroma == a.chroma or bool(why)),
         f"{a.chroma} -> {b.chroma}"),
        ("playable profile", "4:4:4" not in (b.profile or "") or a.chroma in ("444", "rgb", "440"),
         f"{a.profile} -> {b.profile}"),
        _same("colour primaries", a.color_primaries, b.color_primaries, _color("primaries")),
        _same("colour transfer", a.color_trc, b.color_trc, _color("transfer")),
        _same("colour matrix", a.colorspace, b.colorspace, _color("matrix")),
        # An unspecified range is limited ("tv") by convention, and HEVC's VUI cannot say "unspecified".
        ("colour range", (a.color_range or 1) == (b.color_range or 1) or a.chroma == "rgb",
         f"{_color('range')(a.color_range)} -> {_color('range')(b.color_range)}"),
        ("HDR mastering display", (a.hdr and a.hdr.primaries) == (b.hdr and b.hdr.primaries)
         and (a.hdr and a.hdr.max_luminance) == (b.hdr and b.hdr.max_luminance),
         f"{'present' if a.hdr and a.hdr.primaries else 'none'} -> {'present' if b.hdr and b.hdr.primaries else 'none'}"),
        ("HDR content light level", (a.hdr and (a.hdr.max_cll, a.hdr.max_fall)) == (b.hdr and (b.hdr.max_cll, b.hdr.max_fall)),
         f"{'present' if a.hdr and a.hdr.max_cll is not None else 'none'} -> "
         f"{'present' if b.hdr and b.hdr.max_cll is not None else 'none'}"),
        _same("sample aspect ratio", a.sar, b.sar, _sar),
        ("field order", a.field_order == b.field_order or (not plan.interlaced and bool(why))
         or (a.field_order == "interlaced" and b.field_order in ("tt", "bb", "tb", "bt", "interlaced")),
         f"{a.field_order} -> {b.field_order}"),
        ("coded size", (a.width, a.height) == (b.width, b.height), f"{a.width}x{a.height} -> {b.width}x{b.height}"),
    ]
    return checks


#: Frames of a video compared picture to picture (evenly spaced, first and last included).
PICTURE_SAMPLES = 8


def _thumb(bgr: np.ndarray, width: int = 64) -> np.ndarray:
    """A grey thumbnail ``width`` pixels wide (float32, 0-255): enough to tell a picture from its mirror image,
    blind to the codec's noise and to masks (which change a few cells, not the layout)."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    height = max(1, round(grey.shape[0] * width / max(grey.shape[1], 1)))
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)


_WRONG_WAYS = {"mirrored left-right": lambda t: t[:, ::-1], "mirrored top-bottom": lambda t: t[::-1],
               "turned 180°": lambda t: t[::-1, ::-1]}
_SQUARE_WAYS = {"turned 90°": lambda t: np.rot90(t, -1), "turned 270°": lambda t: np.rot90(t, 1),
                "transposed": lambda t: t.T}


def wrong_way(src: np.ndarray, dst: np.ndarray) -> str | None:
    """How ``dst`` (BGR, the output's picture) is the source picture ``src`` turned or mirrored, or None when it
    is the right way round. A way counts only where it matches at least twice as well as the picture as it is,
    so symmetric, flat or fully masked pictures (every way alike) pass."""
    a, b = _thumb(src), _thumb(dst)
    if a.shape != b.shape:  # the size checks say so
        return None
    same = float(np.abs(a - b).mean())
    ways = {**_WRONG_WAYS, **(_SQUARE_WAYS if a.shape[0] == a.shape[1] else {})}
    name, best = min(((n, float(np.abs(f(a) - b).mean())) for n, f in ways.items()), key=lambda x: x[1])
    return name if same > 4.0 and best < 0.5 * same else None


def picture_check(pairs) -> Check:
    """"picture the right way round": no compared ``(source, output)`` picture pair (BGR) is mirrored or turned
    (a newcomer's left-right mirrored and upside-down outputs passed every other check)."""
    found = [wrong_way(a, b) for a, b in pairs]
    wrong = [w for w in found if w]
    if wrong:
        return ("picture the right way round", False, f"{max(set(wrong), key=wrong.count)} in {len(wrong)} of "
                                                      f"{len(found)} picture(s) compared")
    return ("picture the right way round", True, f"{len(found)} picture(s) compared")


def timestamp_check(a: np.ndarray, b: np.ndarray, atol: float = 1e-3) -> Check:
    """Every frame at the same instant (seconds from frame 0, within ``atol``); the detail names the first frame
    that moved (a newcomer read "4.000s -> 4.000s" beside FAIL: the durations matched, frames between did not)."""
    if len(a) != len(b):
        return ("frame timestamps", False, f"{len(a)} -> {len(b)} frames (the frame count says which)")
    moved = np.flatnonzero(np.abs(np.asarray(a, float) - np.asarray(b, float)) > atol)
    if len(moved):
        k = int(moved[0])
        return ("frame timestamps", False, f"frame {k} at {float(a[k]):.3f}s -> {float(b[k]):.3f}s; {len(moved)} of "
                                           f"{len(a)} frames moved")
    return ("frame timestamps", True, f"{len(a)} frames at the same times, the last at {float(a[-1]):.3f}s"
            if len(a) else "no frames")


def stated_duration_check(a, b) -> Check | None:
    """The video stream's duration as its header states it (MP4/MOV: to the last frame's end), the same within one
    frame (an edit list may start or end inside one: ``-ss 0.5 -c copy`` on 25 fps states 1.90 s for 47 frames)
    and a millisecond: a VFR clip's stream was stated 46 ms longer (its last frame's duration guessed by the
    muxer) while every timestamp matched. None when either file states none (Matroska)."""
    da, db = a._stream.duration, b._stream.duration
    if not da or not db:
        return None
    sa, sb = float(da * a.time_base), float(db * b.time_base)
    frame = float(a.frame_duration(a.n_frames - 1) * a.time_base) or 1 / max(a.fps, 1)
    tol = 1e-3 + frame
    return ("video duration stated", abs(sa - sb) <= tol, f"{sa:.3f}s -> {sb:.3f}s")


def frame_shift(before: np.ndarray, here: np.ndarray, after: np.ndarray, out: np.ndarray) -> int:
    """-1 or +1 when the output frame ``out`` (BGR) is the source's frame before or after ``here`` rather than
    ``here`` itself, else 0: as `wrong_way`, the neighbour must match at least twice as well, and by more than
    half a grey level (a still scene, where neighbours are alike, passes; a shift of a slow street scene measured
    1.4 levels from its own frame and 0.07 from the next on the thumbnails)."""
    b = _thumb(out)
    errors = [float(np.abs(_thumb(f) - b).mean()) for f in (before, here, after)]
    best = int(np.argmin(errors))
    return best - 1 if best != 1 and errors[best] < 0.5 * errors[1] and errors[1] - errors[best] > 0.5 else 0


def time_check(triples) -> Check:
    """"picture in time": no compared output frame is its source frame's neighbour (an export shifted by a frame
    keeps every count and timestamp); ``triples``: ``(source n-1, source n, source n+1, output n)`` pictures."""
    shifts = [frame_shift(*t) for t in triples]
    moved = [s for s in shifts if s]
    if len(moved) * 2 > len(shifts):
        way = "next" if max(set(moved), key=moved.count) > 0 else "previous"
        return ("picture in time", False, f"frames show the input's {way} frame in {len(moved)} of {len(shifts)} "
                                          "compared")
    return ("picture in time", True, f"{len(shifts)} frame(s) compared with their neighbours")


def _fps_tolerance(a, b) -> float:
    """How far two readers' mean frame rates may differ when their frames fall at the same instants: each
    container stores times in its own tick (Matroska: 1 ms), so the last frame's time may move by a tick, and
    the rate ``(n - 1) / t_last`` by ``rate * tick / t_last``. A real change of rate (30 to 29.97 fps) moves
    every timestamp, which the timestamp check catches too."""
    tick = max(float(a.time_base), float(b.time_base))
    span = float(min(a.times[-1], b.times[-1])) if a.n_frames > 1 and b.n_frames > 1 else 0.0
    return max(1e-3, 1.5 * max(a.fps, b.fps) * tick / span) if span > 0 else 1e-3


def _pix_fmt(name: str) -> str:
    """FFmpeg's JPEG-range names (yuvj420p...) are the plain layouts with full range, which is checked apart."""
    return name.replace("yuvj", "yuv", 1)


def is_byte_copy(src: Path, dst: Path) -> bool:
    """Is the output the input's very bytes? It then passes every property check and masks nothing (a lossless
    photo in which nothing was found is written back as it was, so this is a note, not a failure)."""
    return Path(src).stat().st_size == Path(dst).stat().st_size and sha256_file(src) == sha256_file(dst)


def verify_video(src: Path, dst: Path, report: Path | None = None) -> list[Check]:
    """The checks of a video output (module doc); ``report``: the run's audit report (redacted audio).

    Raises:
        AnonlabError: a file cannot be read, or the report is unreadable or of another output.
    """
    record = read_audio_record(Path(report), Path(dst)) if report is not None else None
    with VideoReader(src) as a, VideoReader(dst) as b:
        # only the frame list is proof: a header's seconds may be a sound track's, longer than the picture
        short = cut_short(a, a._container).get("cut_short", {})
        listed = short.get("listed_frames")
        checks = [
            ("input read to its end", not listed,
             f"its header lists {listed} frames ({short.get('announced_s', 0):.2f} s), {a.n_frames} could be read "
             f"({short.get('read_s', 0):.2f} s; a file cut off in a copy or a download?): the output holds only "
             "those" if listed else "yes"),
            ("frame count", a.n_frames == b.n_frames, f"{a.n_frames} -> {b.n_frames}"),
            timestamp_check(a.times, b.times),
            ("frame rate", abs(a.fps - b.fps) <= _fps_tolerance(a, b), f"{a.fps:.3f} -> {b.fps:.3f}"),
            ("resolution", (a.width, a.height) == (b.width, b.height), f"{a.width}x{a.height} -> {b.width}x{b.height}"),
            ("rotation", a.rotation == b.rotation, f"{a.rotation} -> {b.rotation}"),
        ]
        stated = stated_duration_check(a, b) if a.n_frames == b.n_frames and not listed else None
        checks += [stated] if stated else []
        checks += stream_checks(a.props, b.props, dst)
        if a.n_frames == b.n_frames and (a.width, a.height) == (b.width, b.height):
            picks = np.unique(np.linspace(0, a.n_frames - 1, min(PICTURE_SAMPLES, a.n_frames)).round().astype(int))
            checks.append(picture_check((a.get(n), b.get(n)) for n in picks))
            inner = [int(n) for n in picks if 0 < n < a.n_frames - 1]
            if inner:
                checks.append(time_check((a.get(n - 1), a.get(n), a.get(n + 1), b.get(n)) for n in inner))
    checks += audio_checks(Path(src), Path(dst), record)
    checks += track_label_checks(Path(src), Path(dst))
    leaked = [k for k in _container_tags(dst) if any(t in k.lower() for t in IDENTIFYING_TAGS)]
    checks.append(("no identifying container tags", not leaked, ", ".join(leaked) or "none"))
    return checks


#: EXIF/TIFF tags that can identify a person, place or device (IFD pointers cover the Exif and GPS blocks).
IDENTIFYING_EXIF = {0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825, 0x927C, 0xA430,
                    0xA431, 0xA433, 0xA434, 0xA435, 700, 33723}


def bit_depth(photo) -> int:
    """Bits a sample of a read `anonlab.media.photo.Photo`: 16 for 16-bit grey or colour, 1 bilevel, else 8."""
    return 16 if photo.mode in ("I;16", "RGB;16") else 1 if photo.mode == "1" else 8


def _phys(data: bytes | None) -> str:
    if not data or len(data) != 9:
        return "none"
    x, y, unit = struct.unpack(">IIB", data)
    return f"{x}x{y} a metre" if unit == 1 else f"aspect {x}:{y}"


def verify_photo(src: Path, dst: Path) -> list[Check]:
    a, b = read_photo(src), read_photo(dst)
    with Image.open(dst) as img:
        exif = img.getexif()
        gps = exif.get_ifd(0x8825)
        xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or exif.get(700)
        if img.format == "TIFF":  # TIFF keeps its structure (size, strips) in the same tag table
            exif = {k: v for k, v in exif.items() if k in IDENTIFYING_EXIF}
    same_format = a.format == b.format or (a.format == "MPO" and b.format == "JPEG")
    pages_ok = len(b.pages) == len(a.pages) or (a.format == "MPO" and len(b.pages) == 1)
    checks = [
        ("size and orientation", a.image.shape == b.image.shape, f"{a.image.shape[1]}x{a.image.shape[0]} -> "
                                                               f"{b.image.shape[1]}x{b.image.shape[0]}"),
        ("pages", pages_ok, f"{len(a.pages) + a.dropped} -> {len(b.pages)}"
                            + (f" ({a.dropped} MPO preview image(s) dropped: unmasked copies)" if a.dropped else "")),
        ("mode", a.mode == b.mode, f"{a.mode} -> {b.mode}"),
        ("bit depth", bit_depth(a) <= bit_depth(b), f"{bit_depth(a)} -> {bit_depth(b)} bits a sample"
         + (f" ({b.format} holds 8: name a .png or .tif output)" if bit_depth(a) > bit_depth(b) and b.format
            not in ("PNG", "TIFF") else "")),
        ("alpha channel", (a.alpha is None) == (b.alpha is None),
         f"{'present' if a.alpha is not None else 'none'} -> {'present' if b.alpha is not None else 'none'}"
         + (f" ({b.format} holds none: name a .png, .webp or .tif output)" if a.alpha is not None and b.alpha is None
            else "")),
        ("ICC profile", a.icc_profile == b.icc_profile,
         "none" if a.icc_profile is None and b.icc_profile is None
         else "kept" if a.icc_profile == b.icc_profile else "changed"),
    ]
    if a.image.shape == b.image.shape:
        checks.append(picture_check([(a.image, b.image)]))
    if same_format and b.format == "JPEG":
        checks.append(("JPEG quantisation tables", a.encoding.get("qtables") == b.encoding.get("qtables"),
                       "same" if a.encoding.get("qtables") == b.encoding.get("qtables")
                       else "re-quantised (another --jpeg-quality)"))
        if a.encoding.get("subsampling") is not None:  # unknown for CMYK and unusual samplings
            checks.append(_same("JPEG chroma subsampling", a.encoding.get("subsampling"), b.encoding.get("subsampling")))
    if same_format and b.format == "TIFF":
        checks.append(_same("TIFF compression", a.encoding.get("compression"), b.encoding.get("compression")))
    if same_format and b.format == "PNG":  # the print size or the pixel aspect (pHYs)
        checks.append(_same("PNG pixel density", _phys(a.encoding.get("phys")), _phys(b.encoding.get("phys"))))
    if same_format and b.format == "WEBP":
        checks.append(_same("WebP lossless", a.encoding.get("lossless"), b.encoding.get("lossless")))
    checks += [
        ("no EXIF", len(exif) == 0, f"{len(exif)} tag(s)"),
        ("no GPS", len(gps) == 0, f"{len(gps)} tag(s)"),
        ("no XMP", not xmp, "present" if xmp else "none"),
    ]
    return checks


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    report = None
    if "--report" in argv:
        i = argv.index("--report")
        report = Path(argv[i + 1]) if i + 1 < len(argv) else None
        del argv[i:i + 2]
        if report is None:
            argv = []
    if len(argv) != 2:
        print("usage: anonlab verify INPUT OUTPUT [--report REPORT.json]", file=sys.stderr)
        return 2
    src, dst = map(Path, argv)
    try:
        checks = verify_video(src, dst, report) if probe(src) == "video" else verify_photo(src, dst)
    except AnonlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    failed = [name for name, ok, _ in checks if not ok]
    if failed:
        print(f"differs: {', '.join(failed)}")
    if is_byte_copy(src, dst):
        print("note: the output is a byte-for-byte copy of the input: nothing in it was masked")
    print("note: these checks cover what the output keeps and drops, not whether its masks cover every person "
          "(the workbench's review and 'anonlab anonymize --red-team' do)")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
