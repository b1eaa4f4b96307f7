"""Which files a batch reads, and where each one's output and report go.

``run_batch(IN, OUT)`` mirrors ``IN``'s tree into ``OUT``: every photo and video (by extension,
`anonlab.media.MEDIA_EXTENSIONS`) becomes one job that writes ``OUT/<same relative path>`` and, beside it, the
audit report ``<output>.report.json``; other files are ignored and counted. The names are decided here, once,
before any work starts, so that the ledger's ``output`` column and a rerun agree on them, and two inputs that
would be written to one output are found then (`plan_outputs`); so are animated images, which no job can
process (`animated_image`). The temporary files a killed writer left are cleared here too, since only the batch
that holds the folder's lock may judge them stale.
"""

from __future__ import annotations

import json
import os
import shlex
import unicodedata
from pathlib import Path

from anonlab.media import MEDIA_EXTENSIONS, VIDEO_EXTENSIONS, remove_stale_temps
from anonlab.media.streams import CONTAINERS

#: Suffix of the audit report written beside each output (``<output>.report.json``).
REPORT_SUFFIX = ".report.json"

#: Image suffixes a batch lists with its media although anonlab cannot process them: they may hold frames that
#: show a face, and an ignored file looks handled in a summary that a publishing script gates on. Each one
#: fails with its reason (an animated one with `animated_image`'s line, a still GIF with the reader's).
UNPROCESSED_IMAGE_EXTENSIONS = {".gif", ".apng"}
#: Image formats that can hold an animation (Pillow's names); their animated files get `animated_image`'s line.
_ANIMATED_FORMATS = ("GIF", "WEBP", "PNG")


def scan_tree(input_dir: str | Path, output_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Media files under ``input_dir`` and the other files, each relative, ``/``-separated and sorted.

    Media are found by suffix: `anonlab.media.MEDIA_EXTENSIONS`, and GIF and APNG
    (`UNPROCESSED_IMAGE_EXTENSIONS`), which are listed so that they fail visibly rather than being ignored.
    Hidden files (name starting with ``.``) are ignored and counted; hidden folders (``.git``, ``.Trash``) and
    ``output_dir``, when it lies inside ``input_dir``, are not entered.

    Raises:
        Nothing for an unreadable or missing folder: `os.walk` skips it (its files are neither listed nor counted).
    """
    root = Path(input_dir)
    skip = Path(output_dir).resolve() if output_dir is not None else None
    media: list[str] = []
    ignored: list[str] = []
    for folder, dirs, files in os.walk(root):
        keep = []
        for d in sorted(dirs):
            if d.startswith(".") or (skip is not None and (Path(folder) / d).resolve() == skip):
                continue
            keep.append(d)
        dirs[:] = keep
        for name in sorted(files):
            path = Path(folder) / name
            suffix = path.suffix.lower()
            if (not name.startswith(".") and (suffix in MEDIA_EXTENSIONS or suffix in UNPROCESSED_IMAGE_EXTENSIONS)
                    and path.is_file()):
                media.append(path.relative_to(root).as_posix())
            else:
                ignored.append(path.relative_to(root).as_posix())
    return sorted(media), sorted(ignored)


def output_name(rel: str, taken: set[str] | None = None) -> str:
    """Relative output path for input ``rel``: the same, except containers anonlab does not write.

    Those (``.avi``, ``.wmv``, ``.flv``, ``.mpg``...) get ``.mkv``, which holds their audio as it is
    (`anonlab.media.streams.default_video_suffix`): ``clip.avi`` becomes ``clip.mkv``, or ``clip.avi.mkv`` when
    ``clip.mkv`` is already ``taken``. A batch passes no ``taken``: which input got the detour depended on the
    order the names sorted in (``clip.avi`` before ``clip.mkv`` got none), so `plan_outputs` refuses both instead.
    """
    p = Path(rel)
    if p.suffix.lower() not in VIDEO_EXTENSIONS or p.suffix.lower() in CONTAINERS:
        return rel
    out = p.with_suffix(".mkv").as_posix()
    if taken is not None and out in taken:
        out = p.with_name(p.name + ".mkv").as_posix()
    return out


def plan_outputs(rels: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The output of every input (`output_name`), and the inputs whose outputs clash, each with its error line.

    Two outputs clash when their relative paths are equal, or equal once letter case and Unicode normalisation
    are ignored: ``clip.avi`` and ``clip.mkv`` both make ``clip.mkv``; ``Clip.MP4`` and ``clip.mp4`` are one file
    on macOS, Windows and exFAT/FAT drives (where footage is often handed over), and ``café`` written with one
    code point or two is one name on macOS. Those are refused even on a file system that tells them apart: the
    output tree may be copied to one that does not, where one output would silently replace the other; a false
    alarm costs a rename. Every input of a clash fails (none is written, whichever sorts first), so the result
    does not depend on the order the files are found in.

    Returns:
        ``(outputs, clashes)``: ``{input: output}`` for every input (relative, ``/``-separated), and
        ``{input: one line naming the inputs and their output}`` for each input that clashes.
    """
    outputs = {rel: output_name(rel) for rel in rels}
    groups: dict[str, list[str]] = {}
    for rel in rels:
        groups.setdefault(_same_file_key(outputs[rel]), []).append(rel)
    clashes: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        members = sorted(members)
        names = ", ".join(members[:-1]) + " and " + members[-1]
        written = sorted({outputs[rel] for rel in members})
        if len(written) == 1:
            line = f"{names} would {'both' if len(members) == 2 else 'all'} be written as {written[0]}"
        else:
            line = (f"{names} would both be written as {' and '.join(written)}, which are one file where letter case "
                    "is ignored (macOS, Windows, USB drives)")
        for rel in members:
            clashes[rel] = line + ": rename one of them"
    return outputs, clashes


def _same_file_key(rel: str) -> str:
    """``rel`` as a case-insensitive, normalising file system compares it (NFC, lower case; close to APFS and
    NTFS: `str.casefold` would also merge ``ß`` and ``ss``, which those keep apart)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", rel).lower())


def animated_image(path: str | Path, shown: str | None = None) -> str | None:
    """The error line for an animated GIF, WebP or PNG (APNG), or None for any other file.

    anonlab processes photos and videos; an animation is neither, and any of its frames may show a face, so a
    batch reports it as failed (never ignored) with a command that turns it into a video anonlab reads.
    ``shown`` is the path the command names (default ``path``): the path as the user gave it, so the command
    runs from the folder the batch was started in. A file Pillow cannot open gives None: the job that reads it
    says what is wrong with it.
    """
    from PIL import Image  # a dependency of anonlab.media; imported here as only batches need this check

    path = Path(path)
    if path.suffix.lower() not in (".gif", ".webp", ".png", ".apng"):  # no other suffix holds these formats
        return None
    try:
        with Image.open(path) as img:
            fmt, frames = img.format, getattr(img, "n_frames", 1)
    except Exception:  # unreadable, truncated, a decompression bomb: for the job's reader to report
        return None
    if fmt not in _ANIMATED_FORMATS or frames < 2:
        return None
    src = Path(shown) if shown is not None else path
    video = src.with_suffix(".mp4")
    if fmt == "WEBP":
        # FFmpeg reads animated GIF and APNG, but older releases (Debian 12's 5.1, measured) cannot decode an
        # animated WebP; Pillow, which anonlab installs, rewrites it as an APNG first, frame durations kept.
        step = src.with_name(src.name + ".png")
        code = f"from PIL import Image; Image.open({json.dumps(str(src))}).save({json.dumps(str(step))}, save_all=True)"
        command = (f"python3 -c {shlex.quote(code)} && ffmpeg -i {shlex.quote(str(step))} "
                   f"{shlex.quote(str(video))} && rm {shlex.quote(str(step))}")
    else:
        command = f"ffmpeg -i {shlex.quote(str(src))} {shlex.quote(str(video))}"
    kind = "WebP" if fmt == "WEBP" else fmt
    return (f"{path.name}: an animated {kind} ({frames} frames) is not processed, and any of its frames may show a "
            f"face; convert it to a video in its place and move {path.name} out of the folder: {command}")


def _remove_stale_temps(path: Path) -> int:
    """Delete temporary files a killed writer left for ``path``: `anonlab.media.remove_stale_temps`, with the
    older pid-less names too, since the batch holds the output folder's lock; returns how many."""
    return remove_stale_temps(path, pidless=True)
