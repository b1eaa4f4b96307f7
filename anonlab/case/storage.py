"""Where case files live and how they reach the disk: atomic, locked saves and a bounded, strict read.

A case file holds region coordinates (the only artefact anonlab writes that does), so it is written with
owner-only permissions (0600) and never half-written: a save goes to a temporary file in the same folder,
is fsynced, replaces the old file with ``os.replace`` and fsyncs the folder, all under an exclusive lock on
a sidecar ``.NAME.lock`` file (between threads and, with POSIX locks, between processes), so concurrent
saves never interleave and a kill during a save leaves the previous complete file. A case saved again where
it was (autosave) passes the digest of the file as it read or last wrote it, and the save is refused if the file
changed since (`CaseChangedElsewhere`: two browser tabs on one case each wrote over the other's edits; the one
that saves second is told, the file keeps the first one's; `check_unchanged` lets that case refuse its next
edits before making them, so its window never shows edits it cannot keep). Reading refuses files
over `MAX_CASE_BYTES` and anything that is not UTF-8 before any JSON is parsed. The bytes themselves are
`anonlab.case.fileformat`'s business.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from anonlab.case.fileformat import CASE_SUFFIX, MAX_CASE_BYTES
from anonlab.errors import AnonlabError, FileTooLargeError
from anonlab.media import read_bytes_bounded

try:  # POSIX advisory locks; elsewhere saves are still atomic, only not serialised between processes.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "CaseChangedElsewhere", "check_unchanged", "default_case_path", "file_digest", "read_case_text", "write_case_text",
]

_UNCHECKED = object()


class CaseChangedElsewhere(AnonlabError):
    """A save refused: the case file is no longer the one this case was read from or last saved as (another
    browser tab, window or program saved it since), and writing over it would drop that one's edits."""


_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on ``.NAME.lock`` beside ``path``: between threads and between processes."""
    key = str(path.resolve())
    with _process_locks_guard:
        tlock = _process_locks.setdefault(key, threading.Lock())
    with tlock:
        if fcntl is None:  # pragma: no cover
            yield
            return
        lock_path = path.with_name(f".{path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def file_digest(data: bytes | None) -> str | None:
    """The sha256 of a case file's bytes (None for no file): what `write_case_text` compares."""
    return None if data is None else hashlib.sha256(data).hexdigest()


def _on_disk(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def check_unchanged(path: Path, expect: str | None) -> None:
    """Raise `CaseChangedElsewhere` unless the file at ``path`` still has the `file_digest` ``expect`` (None: no
    file there). Checked before a change as well as at the save: a window whose case file changed elsewhere
    refuses edits it could never save instead of showing them as if they were kept."""
    if file_digest(_on_disk(path)) != expect:
        raise CaseChangedElsewhere(
            f"{path.name} was changed by another window or program since this one read it, so this change "
            "is not saved: close this window and open the case again (the file keeps the other changes)")


def _atomic_write(path: Path, data: bytes, expect=_UNCHECKED) -> None:
    """Temporary file in the same folder, fsync, ``os.replace``, fsync the folder; under `_file_lock`.

    ``expect``: the `file_digest` the file must still have (None: no file yet), checked under the lock."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AnonlabError(f"{folder}: the case file's folder does not exist")
    try:
        with _file_lock(path):
            if expect is not _UNCHECKED:
                check_unchanged(path, expect)
            # Every saver writes its temporary file while holding the lock, so any left now is from a
            # killed save: remove it (it holds coordinates).
            for stale in folder.glob(f".{glob.escape(path.name)}.*.tmp"):
                with contextlib.suppress(OSError):
                    stale.unlink()
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)  # mode 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            with contextlib.suppress(OSError):
                dfd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
    except PermissionError:
        raise AnonlabError(f"{path.name}: cannot save the case here (permission denied); "
                           "choose a writable folder") from None
    except OSError as exc:
        raise AnonlabError(f"{path.name}: saving the case failed ({exc.strerror or exc}); "
                           "the previous case file is unchanged") from None


def default_case_path(input_path: str | Path) -> Path:
    """``street.mp4`` -> ``street.case.json`` beside it (in the working folder if that one is read-only)."""
    p = Path(input_path)
    name = f"{p.stem}{CASE_SUFFIX}"
    if os.access(p.parent if str(p.parent) else ".", os.W_OK):
        return p.with_name(name)
    return Path.cwd() / name


def write_case_text(path: Path, text: str, expect=_UNCHECKED) -> str:
    """Save a case file's text at ``path`` (`_atomic_write`); returns the saved bytes' `file_digest`.

    ``expect``: the digest the file had when this case read or last wrote it (None: there was no file); when
    given, a file changed since (two browser tabs on one case, each saving its own edits over the other's) is
    not written over.

    Raises:
        CaseChangedElsewhere: ``expect`` was given and the file on disk no longer matches it.
        AnonlabError: the folder is missing or not writable, or the write failed (the old file is unchanged).
    """
    data = text.encode("utf-8")
    _atomic_write(path, data, expect)
    return file_digest(data)


def read_case_text(path: Path) -> str:
    """A case file's text, read whole.

    Raises:
        AnonlabError: (one line, naming the file) it is missing, unreadable, larger than `MAX_CASE_BYTES`
            or not UTF-8.
    """
    try:
        return read_bytes_bounded(path, MAX_CASE_BYTES).decode("utf-8")
    except FileTooLargeError as exc:
        raise AnonlabError(f"{path.name}: case file too large ({exc.size} bytes)") from None
    except FileNotFoundError:
        raise AnonlabError(f"{path.name}: no such case file") from None
    except UnicodeDecodeError:
        raise AnonlabError(f"{path.name}: not a case file (not UTF-8 text)") from None
    except OSError as exc:
        raise AnonlabError(f"{path.name}: cannot read the case file ({exc.strerror or exc})") from None
