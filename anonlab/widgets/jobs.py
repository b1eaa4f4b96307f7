"""Long work off the kernel's thread: any job (`BackgroundJob`) and the analysis (`AnalysisJob`, one of them).

Each job runs one function in a daemon thread and reports through callbacks called *from that thread*
(``on_progress``, ``on_done``); the view hands them to the kernel's event loop, because widgets and the
decoder are not thread-safe. The jobs know nothing of widgets or of the editing model, so the tests run them
in the foreground (``start(background=False)``) with a fake analysis.
"""

from __future__ import annotations

import threading
from typing import Callable

import anonlab.pipeline
from anonlab.errors import AnonlabError
from anonlab.regions import Regions, RegionsLog


class Cancelled(AnonlabError):
    """The analyst cancelled the analysis."""


class BackgroundJob:
    """``fn()`` in a background thread (the red-team check of an export): state, result or error, ``on_done``.

    ``on_done(job)`` is called from the worker thread; the view hands it to the kernel's event loop.

    Attributes:
        state: ``new``, ``running``, ``done`` or ``failed`` (`AnalysisJob` adds ``cancelled``).
        result: what ``fn`` returned, once ``done``.
        error: the exception ``fn`` raised, once it ended without a result (never raised again here).
    """

    _thread_name = "anonlab-job"

    def __init__(self, fn: Callable[[], object], on_done: Callable[["BackgroundJob"], None] | None = None) -> None:
        self.fn, self.on_done = fn, on_done
        self.state = "new"  # new, running, done, failed
        self.result = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    def start(self, background: bool = True) -> "BackgroundJob":
        self.state = "running"
        if background:
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()
        else:
            self._run()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _end_state(self, exc: BaseException) -> str:
        """The state a job ends in when ``fn`` raised ``exc``."""
        return "failed"

    def _run(self) -> None:
        try:
            self.result = self.fn()
            self.state = "done"
        except BaseException as exc:  # reported by the view, never lost in the thread
            self.state, self.error = self._end_state(exc), exc
        if self.on_done is not None:
            self.on_done(self)


class AnalysisJob(BackgroundJob):
    """`anonlab.pipeline.analyse` in a background thread: progress, cancel, and the settled part as it grows.

    The page stays usable while it runs: the analyst scrubs, and the frames the analysis
    has settled already show their regions (`settled_regions`, from `anonlab.track.analyse.Analyser.settled`,
    so they are final). ``on_progress(done, total)`` and ``on_done(job)`` are called from the worker thread;
    the view hands them to the kernel's event loop. A cancelled analysis ends in state ``cancelled``, with
    a `Cancelled` error.

    Args:
        path: the video or photo.
        settings: analysis settings.
        analyse: the analysis function (default `anonlab.pipeline.analyse`; tests pass a fake).
        every: frames between two progress reports and two looks at the settled frames.
    """

    _thread_name = "anonlab-analysis"

    def __init__(self, path, settings, *, analyse: Callable | None = None, every: int = 10,
                 on_progress: Callable[[int, int], None] | None = None,
                 on_done: Callable[["AnalysisJob"], None] | None = None) -> None:
        super().__init__(self._analyse_all, on_done=on_done)
        self.path, self.settings = path, settings
        self._analyse = analyse
        self.every = max(1, int(every))
        self.on_progress = on_progress
        self.done_frames = 0
        self.total = 0
        self._parts = RegionsLog(block=64)  # settled rows, a run of frames at a time
        self._settled = 0
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Stop at the next frame; the case keeps what it had."""
        self._cancel.set()

    @property
    def settled_frames(self) -> int:
        """Frames before this index have their final regions (`settled_regions`); the others none yet."""
        return self._settled

    def settled_regions(self) -> Regions:
        """The regions of the frames settled so far (final: the finished analysis gives them too)."""
        with self._lock:
            return self._parts.merged()

    def _on_frame(self, analyser, media) -> None:
        if self._cancel.is_set():
            raise Cancelled("analysis cancelled; the case is unchanged")
        self.done_frames += 1
        self.total = int(getattr(media, "n_frames", 0) or 0)
        if self.done_frames % self.every:
            return
        try:
            settled = int(analyser.settled())
            if settled > self._settled:
                rows = analyser.settled_rows(self._settled, settled, self.total)
                with self._lock:
                    self._parts.append(rows, key=settled)
                self._settled = settled
        except (AttributeError, ValueError):
            pass  # an analyser without settling: progress only
        if self.on_progress is not None:
            self.on_progress(self.done_frames, self.total)

    def _analyse_all(self):
        fn = self._analyse
        if fn is None:
            fn = anonlab.pipeline.analyse  # looked up now: patching anonlab.pipeline.analyse works
        return fn(self.path, self.settings, progress=False, on_frame=self._on_frame)

    def _end_state(self, exc: BaseException) -> str:
        return "cancelled" if isinstance(exc, Cancelled) else "failed"
