"""Progress bars: tqdm in a terminal, tqdm's notebook widget in Jupyter, plain lines in a log, nothing when
disabled."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


class _Callback:
    def __init__(self, fn: Callable[[int], None]) -> None:
        self.update = fn


class _Lines:
    """Progress for a log (stderr is a file or a pipe): one plain line at each quarter of the work, or every
    ``every`` steps when the total is unknown, where a bar's carriage returns would fill the log with redraws."""

    def __init__(self, total: int | None, desc: str, every: int = 1000) -> None:
        self.total, self.desc, self.every = total, desc, every
        self.done = 0
        self._said = 0  # quarters (or multiples of ``every``) already printed

    def update(self, n: int = 1) -> None:
        self.done += n
        step = self.done * 4 // self.total if self.total else self.done // self.every
        if step > self._said:
            self._said = step
            of = f"{self.done}/{self.total} frames ({100 * self.done // self.total} %)" if self.total else \
                f"{self.done} frames"
            print(f"{self.desc}: {of}", file=sys.stderr, flush=True)


def _in_notebook() -> bool:
    """Inside a Jupyter kernel (whose stderr is no terminal, yet shows tqdm's widget), as `tqdm.auto` decides."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except AttributeError:  # pragma: no cover - an IPython without get_ipython
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def bars_wanted() -> bool:
    """Do tqdm's bars suit where progress goes: a terminal on stderr, or a notebook's widget? Otherwise
    (a file or a pipe) progress is plain lines."""
    return _in_notebook() or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


@contextlib.contextmanager
def progress_bar(total: int | None, desc: str, enabled: "bool | Callable[[int], None]" = True) -> Iterator:
    """A context manager yielding an object with ``update(n)``.

    ``enabled`` may also be a callable ``fn(n)``: the caller (a widget, a batch worker) shows progress
    its own way and receives each step.

    ``tqdm.auto`` picks the notebook widget inside Jupyter and the text bar in a terminal; where stderr is a
    file or a pipe (cron, ``2> log``), a plain line at each quarter (`_Lines`). Progress goes to stderr so
    stdout stays clean for JSON a script may pipe. Descriptions carry file names only.
    """
    if callable(enabled):
        yield _Callback(enabled)
        return
    if not enabled:
        yield _Silent()
        return
    if not bars_wanted():
        yield _Lines(total, desc)
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
