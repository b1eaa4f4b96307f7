"""Which files a batch reads, and where each one's output and report go.

``run_batch(IN, OUT)`` mirrors ``IN``'s tree into ``OUT``: every photo and video (by extension,
`anonlab.media.MEDIA_EXTENSIONS`) becomes one job that writes ``OUT/<same relative path>`` and, beside it, the
audit report ``<output>.report.json``; other files are ignored and counted. The names are decided here, once,
before any work starts, so that the ledger's ``output`` column and a rerun agree on them; the temporary files a
killed writer left are cleared here too, since only the batch that holds the folder's lock may judge them
stale.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from anonlab.media import MEDIA_EXTENSIONS, VIDEO_EXTENSIONS
from anonlab.media.streams import CONTAINERS

#: Suffix of the audit report written beside each output (``<output>.report.json``).
REPORT_SUFFIX = ".report.json"


def scan_tree(input_dir: str | Path, output_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Media files under ``input_dir`` and the other files, each relative, ``/``-separated and sorted.

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
            if not name.startswith(".") and path.suffix.lower() in MEDIA_EXTENSIONS and path.is_file():
                media.append(path.relative_to(root).as_posix())
            else:
                ignored.append(path.relative_to(root).as_posix())
    return sorted(media), sorted(ignored)


def output_name(rel: str, taken: set[str] | None = None) -> str:
    """Relative output path for input ``rel``: the same, except containers anonlab does not write.

    Those (``.avi``, ``.wmv``, ``.flv``, ``.mpg``...) get ``.mkv``, which holds their audio as it is
    (`anonlab.media.streams.default_video_suffix`): ``clip.avi`` becomes ``clip.mkv``, or ``clip.avi.mkv`` when
    ``clip.mkv`` is already ``taken``.
    """
    p = Path(rel)
    if p.suffix.lower() not in VIDEO_EXTENSIONS or p.suffix.lower() in CONTAINERS:
        return rel
    out = p.with_suffix(".mkv").as_posix()
    if taken is not None and out in taken:
        out = p.with_name(p.name + ".mkv").as_posix()
    return out


def _remove_stale_temps(path: Path) -> int:
    """Delete temporary files a killed writer left for ``path``.

    Two writers' patterns: `atomic_output`'s ``.<stem>.XXXXXXXX.part<suffix>`` and the report's
    ``.<name>.XXXXXXXX.tmp``. Only called while the batch holds the output folder's lock, so no live writer
    owns them.
    """
    removed = 0
    if not path.parent.is_dir():
        return 0
    patterns = [
        re.compile(rf"^\.{re.escape(path.stem)}\.[A-Za-z0-9_]{{8}}\.part{re.escape(path.suffix)}$"),
        re.compile(rf"^\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp$"),
    ]
    for entry in path.parent.iterdir():
        if any(p.match(entry.name) for p in patterns) and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed
