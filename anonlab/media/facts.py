"""The one record of an input's facts: where it is, what it is (hash, size, kind) and its frame geometry.

A case file writes it as its ``input`` object (`InputFacts.to_dict`, whose keys and order are part of the
case format), and the same facts are what an analysis and a batch chunk know about their input; keeping
them in one dataclass means one place decides how they are read from a file and how they are written.
It holds no pixels and no coordinates, so it may be logged and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from anonlab.media import open_media, sha256_file

__all__ = ["InputFacts"]


@dataclass
class InputFacts:
    """Path, name, sha256, size in bytes, kind (``"photo"`` or ``"video"``), frame count, size and rate.

    ``sha256`` and ``size`` are None where the file was not at hand (a blank case, or an analysis whose
    input has gone).
    """

    path: str
    name: str
    sha256: str | None
    size: int | None
    kind: str
    n_frames: int
    width: int
    height: int
    fps: float

    def to_dict(self) -> dict:
        return {"path": self.path, "name": self.name, "sha256": self.sha256, "size": self.size, "kind": self.kind,
                "n_frames": self.n_frames, "width": self.width, "height": self.height, "fps": self.fps}

    @classmethod
    def from_media(cls, path: str | Path, media, *, sha256: str | None = None) -> "InputFacts":
        """The facts of ``path``, already opened as ``media`` (an `anonlab.media.open_media` reader).

        The path is made absolute; the sha256 is computed unless given, the size read from the file.
        """
        path = Path(path).resolve()
        return cls(str(path), path.name, sha256 or sha256_file(path), path.stat().st_size, media.kind,
                   int(media.n_frames), int(media.width), int(media.height), float(media.fps))

    def on_disk(self, *, sha256: str | None = None) -> "InputFacts":
        """These facts with the path made absolute and, where the file is there, its sha256 (unless given) and
        size; where it has gone, both None."""
        path = Path(self.path).resolve()
        there = path.exists()
        return replace(self, path=str(path), name=path.name,
                       sha256=sha256 or (sha256_file(path) if there else None),
                       size=path.stat().st_size if there else None)

    @classmethod
    def read(cls, path: str | Path, *, sha256: str | None = None) -> "InputFacts":
        """Open ``path`` (`anonlab.media.open_media`), read its facts and close it.

        Raises:
            MediaError: the file is missing or not a photo or video anonlab can read.
        """
        path = Path(path).resolve()
        media = open_media(path)
        try:
            return cls.from_media(path, media, sha256=sha256)
        finally:
            media.close()
