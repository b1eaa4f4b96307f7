"""The progress display of a batch: one overall bar (files) and one bar per file in flight.

Workers report ``(token, file, task, phase, done, total)`` messages (`anonlab.batch.executors._Channel`); the
driver hands each to `_Display.message`, which sums a file's tasks (its chunks' analysis and the render pass)
into that file's bar. Bars are tqdm's (``tqdm.auto``: text on stderr in a terminal, widgets in a notebook), and
they show file names and frame counts only. Where stderr is a file or a pipe (a scheduler's log) there are no
bars: one line per file finished (`anonlab.progress.bars_wanted`).
"""

from __future__ import annotations

import sys
from typing import Any

from anonlab.progress import bars_wanted


class _Display:
    """An overall bar (files) and one bar per file in flight (frames analysed + rendered)."""

    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, Any] = {}
        self.state: dict[str, dict] = {}
        self.slots: dict[str, int] = {}
        self.overall = None
        self.total, self.finished_count = total, 0
        self.lines = enabled and not bars_wanted()
        if enabled and not self.lines:
            from tqdm.auto import tqdm  # here: tqdm.auto probes for a notebook on import; only needed for bars

            self._tqdm = tqdm
            self.overall = tqdm(total=total, desc="batch", unit="file", file=sys.stderr, position=0,
                                dynamic_ncols=True)

    def message(self, msg) -> None:
        if not self.enabled or self.lines:
            return
        _, rel, task, phase, done, total = msg
        if rel not in self.state:
            return
        state = self.state[rel]
        state[(task, phase)] = (done, total)
        bar = self.bars.get(rel)
        if bar is None:
            free = sorted(set(range(1, len(self.slots) + 2)) - set(self.slots.values()))[0]
            self.slots[rel] = free
            bar = self.bars[rel] = self._tqdm(total=0, desc=rel[-40:], unit="frame", file=sys.stderr,
                                              position=free, leave=False, dynamic_ncols=True)
        bar.total = sum(t for _, t in state.values())
        bar.n = sum(d for d, _ in state.values())
        bar.set_postfix_str(phase, refresh=False)
        bar.refresh()

    def started(self, rel: str) -> None:
        self.state[rel] = {}

    def expect(self, rel: str, totals: dict) -> None:
        """Announce a file's work before it reports (``(task, phase) -> total``), so its bar total is right."""
        if rel in self.state:
            for key, total in totals.items():
                self.state[rel].setdefault(key, (0, total))

    def finished(self, rel: str, status: str, counts: dict) -> None:
        self.state.pop(rel, None)
        self.slots.pop(rel, None)
        bar = self.bars.pop(rel, None)
        if bar is not None:
            bar.close()
        self.finished_count += 1
        if self.lines:
            print(f"batch: {self.finished_count}/{self.total} file(s): {rel} {status}", file=sys.stderr, flush=True)
        if self.overall is not None:
            self.overall.update(1)
            self.overall.set_postfix(done=counts["done"], skipped=counts["skipped"], failed=counts["failed"],
                                     refresh=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        if self.overall is not None:
            self.overall.close()
