"""Check that an output is a faithful, metadata-free copy of its input (the demo runs this).

``python -m anonlab.report.verify INPUT OUTPUT`` prints one line per property and exits non-zero if any differs,
naming it. Videos: frame count, timestamps, frame rate, displayed size, rotation, codec and pixel format as
`anonlab.media.streams.plan_video` chose them, bit depth, chroma subsampling, colour primaries / transfer /
matrix / range, HDR mastering display and content light level, sample aspect ratio, field order, byte-identical
audio packets and no identifying container tags. Photos: size and orientation, pages, Pillow mode, JPEG
quantisation tables and chroma subsampling, TIFF compression, WebP losslessness, ICC profile, and no
EXIF/GPS/XMP.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image

from anonlab.errors import AnonlabError
from anonlab.media import VideoReader, probe
from anonlab.media.streams import COLOR_NAMES, plan_video

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


def _container_tags(path: Path) -> dict:
    with av.open(str(path)) as c:
        tags = dict(c.metadata)
        for s in c.streams:
            tags.update({f"{s.type}:{k}": v for k, v in s.metadata.items()})
    return tags


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
    planned_depth = 8 if plan.pix_fmt.endswith("p") else int(plan.pix_fmt.split("p")[-1][:2])
    planned_chroma = plan.pix_fmt[3:6]
    checks = [
        ("codec", b.codec == plan.codec, f"{a.codec} -> {b.codec} (planned {plan.codec}{'; ' + why if why else ''})"),
        ("pixel format", b.pix_fmt == plan.pix_fmt, f"{a.pix_fmt} -> {b.pix_fmt} (planned {plan.pix_fmt})"),
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


def verify_video(src: Path, dst: Path) -> list[Check]:
    with VideoReader(src) as a, VideoReader(dst) as b:
        checks = [
            ("frame count", a.n_frames == b.n_frames, f"{a.n_frames} -> {b.n_frames}"),
            ("frame timestamps", a.n_frames == b.n_frames and np.allclose(a.times, b.times, atol=1e-3),
             f"duration {a.duration:.3f}s -> {b.duration:.3f}s"),
            ("frame rate", abs(a.fps - b.fps) < 1e-3, f"{a.fps:.3f} -> {b.fps:.3f}"),
            ("resolution", (a.width, a.height) == (b.width, b.height), f"{a.width}x{a.height} -> {b.width}x{b.height}"),
            ("rotation", a.rotation == b.rotation, f"{a.rotation} -> {b.rotation}"),
        ]
        checks += stream_checks(a.props, b.props, dst)
    pa, pb = _audio_packets(src), _audio_packets(dst)
    checks.append(("audio packets identical", pa == pb, f"{len(pa)} stream(s), {sum(map(len, pa))} packets"))
    leaked = [k for k in _container_tags(dst) if any(t in k.lower() for t in IDENTIFYING_TAGS)]
    checks.append(("no identifying container tags", not leaked, ", ".join(leaked) or "none"))
    return checks


#: EXIF/TIFF tags that can identify a person, place or device (IFD pointers cover the Exif and GPS blocks).
IDENTIFYING_EXIF = {0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825, 0x927C, 0xA430,
                    0xA431, 0xA433, 0xA434, 0xA435, 700, 33723}


def verify_photo(src: Path, dst: Path) -> list[Check]:
    from anonlab.media import read_photo

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
        ("ICC profile", a.icc_profile == b.icc_profile, "kept" if a.icc_profile == b.icc_profile else "changed"),
    ]
    if same_format and b.format == "JPEG":
        checks.append(("JPEG quantisation tables", a.encoding.get("qtables") == b.encoding.get("qtables"),
                       "same" if a.encoding.get("qtables") == b.encoding.get("qtables")
                       else "re-quantised (another --jpeg-quality)"))
        if a.encoding.get("subsampling") is not None:  # unknown for CMYK and unusual samplings
            checks.append(_same("JPEG chroma subsampling", a.encoding.get("subsampling"), b.encoding.get("subsampling")))
    if same_format and b.format == "TIFF":
        checks.append(_same("TIFF compression", a.encoding.get("compression"), b.encoding.get("compression")))
    if same_format and b.format == "WEBP":
        checks.append(_same("WebP lossless", a.encoding.get("lossless"), b.encoding.get("lossless")))
    checks += [
        ("no EXIF", len(exif) == 0, f"{len(exif)} tag(s)"),
        ("no GPS", len(gps) == 0, f"{len(gps)} tag(s)"),
        ("no XMP", not xmp, "present" if xmp else "none"),
    ]
    return checks


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: anonlab verify INPUT OUTPUT", file=sys.stderr)
        return 2
    src, dst = map(Path, argv)
    try:
        checks = verify_video(src, dst) if probe(src) == "video" else verify_photo(src, dst)
    except AnonlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    failed = [name for name, ok, _ in checks if not ok]
    if failed:
        print(f"differs: {', '.join(failed)}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
