"""Media input and output: what kind a file is, one reader interface for photos and videos, safe output.

`open_media(path)` returns a `VideoReader` or a `PhotoReader`; both offer ``n_frames``, ``width``,
``height``, ``fps``, ``times``, ``get(n)`` and ``frames()``, so the analysis loop treats a photo as a
one-frame video. `atomic_output` is how every writer in anonlab creates files; `read_bytes_bounded` is how
a reader of a small file (case, annotations) takes it whole without trusting its size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from glob import escape as glob_escape
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from anonlab.errors import FileTooLargeError, MediaError, OutputError
from anonlab.media.photo import Photo, read_photo, write_photo
from anonlab.media.video import VideoReader, write_video

PHOTO_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".bmp"}
#: Camcorder and archive formats too: DV tapes (.dv), MPEG-2 camcorders (.mod, .tod, .vob), broadcast MXF.
VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts", ".ts", ".3gp", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".dv", ".mxf", ".vob", ".mod", ".tod", ".ogv", ".asf", ".f4v", ".divx", ".m2v"}
MEDIA_EXTENSIONS = PHOTO_EXTENSIONS | VIDEO_EXTENSIONS


class PhotoReader:
    """A photo seen through the reader interface: one frame per page (one, except multi-page TIFF)."""

    kind = "photo"
    fps = 0.0
    rotation = 0
    damaged: set = frozenset()

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.photo: Photo = read_photo(self.path)
        self.height, self.width = self.photo.image.shape[:2]
        self.n_frames = len(self.photo.pages)
        self.times = np.zeros(self.n_frames)
        self.duration = 0.0

    def get(self, n: int) -> np.ndarray:
        if not 0 <= n < self.n_frames:
            raise IndexError(f"this photo has pages 0..{self.n_frames - 1}, not {n}")
        return self.photo.pages[n]

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        for n in range(max(0, start), stop):
            yield n, self.photo.pages[n]

    def close(self) -> None:
        pass

    def __enter__(self) -> "PhotoReader":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __len__(self) -> int:
        return self.n_frames


def probe(path: str | Path) -> str:
    """``"photo"`` or ``"video"``, judged by content (a wrong extension is fine); `MediaError` otherwise."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder; pass a photo or video (or use 'anonlab batch' for folders)")
    try:
        info = path.stat()
    except PermissionError:
        raise MediaError(f"{path.name}: permission denied; check the file's access rights") from None
    if not stat.S_ISREG(info.st_mode):
        # Opening a named pipe blocks until a writer appears, and devices or sockets never end: refuse first.
        what = ("a named pipe" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file")
        raise MediaError(f"{path.name}: is {what}, not a file; anonlab reads regular files (copy the stream to "
                         "a file first)")
    try:
        size = info.st_size
        with open(path, "rb"):
            pass
    except PermissionError:
        raise MediaError(f"{path.name}: permission denied; check the file's access rights") from None
    if size == 0:
        raise MediaError(f"{path.name}: the file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            if getattr(img, "n_frames", 1) > 1 and img.format in ("GIF", "WEBP", "PNG"):
                raise MediaError(f"{path.name}: animated {img.format} is not supported; convert it to a video (MP4) first")
            if img.format == "GIF":  # one picture, in a 256-colour palette anonlab does not write
                raise MediaError(f"{path.name}: GIF images are not supported; convert it to PNG (lossless) first")
            return "photo"
    except Image.DecompressionBombError:
        raise MediaError(f"{path.name}: declared image size is too large to process; likely corrupt or a "
                         "decompression bomb") from None
    except (UnidentifiedImageError, OSError):
        pass
    return "video"


def open_media(path: str | Path):
    """A `PhotoReader` or `VideoReader` for ``path``; `MediaError` with one clear line if unusable."""
    return PhotoReader(path) if probe(path) == "photo" else VideoReader(path)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _unwritable(dst: Path) -> tuple[str, str] | None:
    """Why no file can be created at ``dst``, as ``(reason, what to do)``; None when its folder takes one.

    Asked of the folder (`os.access`, `os.statvfs`): nothing is created to find out. Root passes a folder's
    permission bits, and then really can write there; a read-only file system refuses root too.
    """
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.exists():
        return f"folder {folder} does not exist", "create it first, or choose another folder"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder", "choose another path"
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system", "choose a folder you can write to"
    return "permission denied", "choose a folder you can write to"


def check_output_path(src: str | Path, dst: str | Path, overwrite: bool, *, label: str | None = None) -> Path:
    """Refuse to write over the input, or over an existing file without ``overwrite``, or where no file can be
    created (a missing or read-only folder, no permission, a file where the folder should be).

    ``label`` is how the path was given (``"-o out/clip.mp4"``); the folder's refusal names it (default: the
    path).

    Raises:
        OutputError: one line naming the path and what to do.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and (dst.resolve() == src.resolve() or os.path.samefile(src, dst)):
        raise OutputError(f"{dst.name}: the output would overwrite the input; choose another output path")
    if dst.resolve() == src.resolve():
        raise OutputError(f"{dst.name}: the output would overwrite the input; choose another output path")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst.name}: output exists; pass --overwrite to replace it")
    if dst.exists() and dst.is_dir():
        raise OutputError(f"{dst}: is a folder; give a file name for the output")
    if dst.exists() and not dst.is_file():
        raise OutputError(f"{dst.name}: exists and is not a regular file (a pipe or device); choose another output")
    if why := _unwritable(dst):
        raise OutputError(f"{label or dst}: cannot write there ({why[0]}); {why[1]}")
    return dst


def check_output_file(src: str | Path, dst: str | Path, label: str) -> Path:
    """Refuse, before any work, a file that a run writes at its end (``--report``, ``--regions-out``) and could
    not: the input itself, a folder, a pipe or device, or a place where no file can be created.

    Unlike `check_output_path` an existing file is replaced without ``--overwrite``, as these always were.
    ``label`` is how the path was given (``"--report rofs/r.json"``) and starts every message.

    Raises:
        OutputError: one line naming ``label`` and what to do.
    """
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(src, dst)):
        raise OutputError(f"{label}: is the input file; choose another path")
    if dst.is_dir():
        raise OutputError(f"{label}: is a folder; give a file name")
    if dst.exists() and not dst.is_file():
        raise OutputError(f"{label}: exists and is not a regular file (a pipe or device); choose another path")
    if why := _unwritable(dst):
        raise OutputError(f"{label}: cannot write there ({why[0]}); {why[1]}")
    return dst


def check_run_outputs(path: str | Path, output: str | Path, *, output_label: str, report: str | Path | None = None,
                      regions_out: str | Path | None = None) -> list[Path]:
    """Refuse, before any work, a ``--report`` or ``--regions-out`` that the run could not write at its end.

    Each must be writable (`check_output_file`), not the input, and no other file of the run:
    ``output`` (checked by `check_output_path`), the report, or the report's Markdown twin.
    ``output_label`` is how the output was given (``"-o out.mp4"``).

    Returns:
        Every path the run writes: the output, then the report and its twin, then the regions file.

    Raises:
        OutputError: one line that names the option and the path as given.
    """
    taken = {Path(output).resolve(): "the -o output" if output_label.startswith("-o ") else "the output"}
    paths = [Path(output)]
    wanted = []
    if report:
        report = Path(report)
        if report.with_suffix(".md") == report:
            raise OutputError(f"--report {report}: use a .json name (the Markdown twin is written beside it as .md)")
        wanted += [(report, f"--report {report}", "the --report file"),
                   (report.with_suffix(".md"), f"--report {report} (its Markdown twin {report.with_suffix('.md')})",
                    "the --report file's Markdown twin")]
    if regions_out:
        wanted.append((Path(regions_out), f"--regions-out {regions_out}", "the --regions-out file"))
    for dst, label, name in wanted:
        if dst.resolve() in taken:
            raise OutputError(f"{label}: is also {taken[dst.resolve()]}; give each its own name")
        check_output_file(path, dst, label)
        taken[dst.resolve()] = name
        paths.append(dst)
    return paths


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: str | Path, *, pidless: bool = False) -> int:
    """Delete the temporaries that a killed writer of ``path`` left beside it; returns how many.

    `atomic_output` names them ``.<stem>.<pid>-XXXXXXXX.part<suffix>``: one is stale when no process of that
    pid runs any more (this process's own are kept: another thread may be writing). With ``pidless`` (only
    for a caller that holds a lock no other writer of the folder can: the batch) older releases' names are
    removed too, which carry no pid: ``.<stem>.XXXXXXXX.part<suffix>`` and the report's
    ``.<name>.XXXXXXXX.tmp``. Files of other names, and files that cannot be removed, are left alone.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return 0
    with_pid = re.compile(rf"^\.{re.escape(path.stem)}\.(\d+)-[A-Za-z0-9_]{{8}}\.part{re.escape(path.suffix)}$")
    without_pid = [re.compile(rf"^\.{re.escape(path.stem)}\.[A-Za-z0-9_]{{8}}\.part{re.escape(path.suffix)}$"),
                   re.compile(rf"^\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp$")]
    removed = 0
    try:
        # a glob narrows the folder to this output's names (a batch folder holds thousands of files)
        candidates = list(folder.glob(f".{glob_escape(path.stem)}.*"))
    except OSError:
        return 0
    for entry in candidates:
        match = with_pid.match(entry.name)
        if match:
            pid = int(match.group(1))
            stale = pid != os.getpid() and not _pid_alive(pid)
        else:
            stale = pidless and any(p.match(entry.name) for p in without_pid)
        if stale and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def atomic_output(dst: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` only if the block succeeds.

    The temporary keeps ``dst``'s extension so writers can infer the format. On any error, or a kill,
    ``dst`` is either absent or the previous complete file, never half-written.
    """
    dst = Path(dst)
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    remove_stale_temps(dst)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.stem}.{os.getpid()}-", suffix=f".part{dst.suffix}", dir=folder)
    except PermissionError:
        raise OutputError(f"{folder}: output folder is not writable; choose another output folder") from None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output ({exc.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file 0600; give the output the permissions a normal new file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, dst)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise OutputError(f"{dst.name}: writing failed ({exc.strerror or exc}); nothing was written") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a small text file (report, regions, interchange) through `atomic_output`, synced to disk."""
    path = Path(path)
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return path


def read_bytes_bounded(path: str | Path, max_bytes: int) -> bytes:
    """The whole content of the file at ``path``, refused when it holds more than ``max_bytes`` bytes.

    The size is checked on the opened file before reading, and the read itself stops after ``max_bytes + 1``
    bytes, so a file that grows meanwhile, or one that reports no size (``/proc``), costs at most about
    ``max_bytes`` of memory. Like `open`, it waits for a writer on a named pipe.

    Raises:
        FileTooLargeError: more than ``max_bytes`` bytes (an `AnonlabError`, so callers may let it through).
        OSError: as `open` and `read` raise it: `FileNotFoundError`, `IsADirectoryError`, `PermissionError`...
    """
    path = Path(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise FileTooLargeError(path.name, size, max_bytes)
        data = fh.read(size + 1)  # one read of the whole file: it returns fewer bytes than asked only at the end
        if len(data) <= size:
            return data
        # Grown since the check, or sizeless: go on in steps, so memory stays bounded by max_bytes.
        parts, total = [data], len(data)
        while total <= max_bytes and (chunk := fh.read(min(1 << 20, max_bytes + 1 - total))):
            parts.append(chunk)
            total += len(chunk)
    if total > max_bytes:
        raise FileTooLargeError(path.name, total, max_bytes)
    return b"".join(parts)


__all__ = [
    "MEDIA_EXTENSIONS", "PHOTO_EXTENSIONS", "VIDEO_EXTENSIONS", "Photo", "PhotoReader", "VideoReader",
    "atomic_output", "check_output_file", "check_output_path", "check_run_outputs", "open_media", "probe",
    "read_bytes_bounded", "read_photo", "remove_stale_temps", "sha256_file", "write_photo", "write_text_atomic",
    "write_video",
]
