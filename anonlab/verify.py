"""Check that an output is a faithful, metadata-free copy of its input (the demo runs this).

``python -m anonlab.verify INPUT OUTPUT`` prints one line per check and exits non-zero if any fails:
frame count, frame timestamps, resolution, rotation and byte-identical audio packets for video;
size, orientation and absence of EXIF/GPS/XMP for photos.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image

from anonlab.media import VideoReader, probe


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


def verify_video(src: Path, dst: Path) -> list[tuple[str, bool, str]]:
    with VideoReader(src) as a, VideoReader(dst) as b:
        checks = [
            ("frame count", a.n_frames == b.n_frames, f"{a.n_frames} -> {b.n_frames}"),
            ("frame timestamps", a.n_frames == b.n_frames and np.allclose(a.times, b.times, atol=1e-3),
             f"duration {a.duration:.3f}s -> {b.duration:.3f}s"),
            ("frame rate", abs(a.fps - b.fps) < 1e-3, f"{a.fps:.3f} -> {b.fps:.3f}"),
            ("resolution", (a.width, a.height) == (b.width, b.height), f"{a.width}x{a.height} -> {b.width}x{b.height}"),
            ("rotation", a.rotation == b.rotation, f"{a.rotation} -> {b.rotation}"),
        ]
    pa, pb = _audio_packets(src), _audio_packets(dst)
    checks.append(("audio packets identical", pa == pb, f"{len(pa)} stream(s), {sum(map(len, pa))} packets"))
    leaked = [k for k in _container_tags(dst) if any(t in k.lower() for t in IDENTIFYING_TAGS)]
    checks.append(("no identifying container tags", not leaked, ", ".join(leaked) or "none"))
    return checks


#: EXIF/TIFF tags that can identify a person, place or device (IFD pointers cover the Exif and GPS blocks).
IDENTIFYING_EXIF = {0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825, 0x927C, 0xA430,
                    0xA431, 0xA433, 0xA434, 0xA435, 700, 33723}


def verify_photo(src: Path, dst: Path) -> list[tuple[str, bool, str]]:
    from anonlab.media import read_photo

    a, b = read_photo(src), read_photo(dst)
    with Image.open(dst) as img:
        exif = img.getexif()
        gps = exif.get_ifd(0x8825)
        xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or exif.get(700)
        if img.format == "TIFF":  # TIFF keeps its structure (size, strips) in the same tag table
            exif = {k: v for k, v in exif.items() if k in IDENTIFYING_EXIF}
    return [
        ("size and orientation", a.image.shape == b.image.shape, f"{a.image.shape[1]}x{a.image.shape[0]} -> "
                                                               f"{b.image.shape[1]}x{b.image.shape[0]}"),
        ("no EXIF", len(exif) == 0, f"{len(exif)} tag(s)"),
        ("no GPS", len(gps) == 0, f"{len(gps)} tag(s)"),
        ("no XMP", not xmp, "present" if xmp else "none"),
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m anonlab.verify INPUT OUTPUT", file=sys.stderr)
        return 2
    src, dst = map(Path, argv)
    checks = verify_video(src, dst) if probe(src) == "video" else verify_photo(src, dst)
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
