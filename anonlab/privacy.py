"""Where transient personal data may live: one private temporary folder, removed when done.

Proxies, frame caches and crops made while working are personal data too. They go only into a folder
made by `private_tempdir` (mode 0700, so other local users cannot read it) that is deleted on exit, even
after an error. The case file the analyst saves on purpose is the only lasting artefact with regions.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

PREFIX = "anonlab-"


@contextlib.contextmanager
def private_tempdir(purpose: str = "work") -> Iterator[Path]:
    """A fresh folder readable by this user only; removed with its contents on exit."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{purpose}-"))
    os.chmod(path, stat.S_IRWXU)  # mkdtemp already makes 0700; say it explicitly, it is the guarantee
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


#: Four or more numbers in a row (``12, 40, 88, 120`` or ``[12 40 88 120]``) look like a box.
_BOX_LIKE = re.compile(r"-?\d+(?:\.\d+)?(?:[\s,;]+\[?-?\d+(?:\.\d+)?\]?){3,}")


def looks_like_coordinates(text: str) -> bool:
    """True when ``text`` holds a run of four numbers, the shape of a leaked box."""
    return bool(_BOX_LIKE.search(text))
