"""Progress bars: tqdm in a terminal, tqdm's notebook widget in Jupyter, nothing when disabled."""

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


@contextlib.contextmanager
def progress_bar(total: int | None, desc: str, enabled: "bool | Callable[[int], None]" = True) -> Iterator:
    """A context manager yielding an object with ``update(n)``.

    ``enabled`` may also be a callable ``fn(n)``: the caller (a widget, a batch worker) shows progress
    its own way and receives each step.

    ``tqdm.auto`` picks the notebook widget inside Jupyter and the text bar elsewhere; the bar goes to
    stderr so stdout stays clean for JSON a script may pipe. Descriptions carry file names only.
    """
    if callable(enabled):
        yield _Callback(enabled)
        return
    if not enabled:
        yield _Silent()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
