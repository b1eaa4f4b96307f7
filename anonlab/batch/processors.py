"""What runs for one file of a batch: the `Job` record, the default job `Anonymizer`, and `error_line`.

A job is plain, picklable data (`Job`) handed to a *processor*: any callable ``processor(job, progress) -> dict``
(the ledger row's fields), or an object that can also run in chunks with ``plan(job) -> [Chunk]``,
``analyse(job, chunk, progress) -> ChunkResult`` and ``finish(job, results, progress) -> dict``. `Anonymizer`
is the default: the anonlab pipeline (detect, track, temporal safety, one render pass, audit report). The
driver calls these in worker processes (`anonlab.batch.executors`), so processors are small picklable objects
that build their heavy state (the detector) once per worker.

**Failures are isolated**: a file that cannot be processed is recorded with one line, `error_line` (an
`AnonlabError`'s text; other exceptions by type name only, never a traceback or file contents), and the batch
goes on.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from anonlab import detect
from anonlab.batch.chunks import TO_END, Chunk, ChunkResult, keyframe_indices, plan_chunks
from anonlab.errors import AnonlabError
from anonlab.media import VideoReader, open_media, probe, sha256_file
from anonlab.media.facts import InputFacts
from anonlab.media.dropped import dropped_streams
from anonlab.pipeline import Analysis, analyse_pages, red_team_check, red_team_extra, render, stream_fields
from anonlab.report.audit import make_report, write_report
from anonlab.settings import Settings
from anonlab.track.analyse import analyse_frames, seam_margin, settings_for_rate, stitch_chunks

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Job:
    """One file of a batch, as a worker sees it (plain data, picklable).

    Attributes:
        rel: path relative to the input folder, ``/``-separated (the ledger key).
        src: absolute input path.
        dst: absolute output path (written through `atomic_output`).
        report: path of the JSON report to write beside the output, or None.
        input_sha256: sha256 of the input when the job was planned.
        settings: the `Settings` to run with.
        chunk_seconds: split long videos into chunks of about this length (None: never).
        red_team: check the written output again with every detector at a lowered threshold
            (`anonlab.pipeline.red_team_check`); the counts go into the report and the returned row.
    """

    rel: str
    src: str
    dst: str
    report: str | None
    input_sha256: str
    settings: Settings
    chunk_seconds: float | None = None
    red_team: bool = False


def error_line(exc: BaseException) -> str:
    """The one line recorded for a failed file: an `AnonlabError`'s text, otherwise the exception's type only.

    Messages of other exceptions may quote file contents or coordinates, so they are never recorded.
    """
    if isinstance(exc, AnonlabError):
        text = " ".join(str(exc).split())
        return (text[:400] + "…") if len(text) > 400 else (text or type(exc).__name__)
    if isinstance(exc, MemoryError):
        return "out of memory; run with fewer workers or on a machine with more memory"
    name = type(exc).__name__
    if isinstance(exc, BrokenProcessPool) or name in ("KilledWorker", "WorkerLost"):
        return f"the worker process died while processing this file ({name}); the file may be corrupt"
    return f"internal error ({name}); rerun this file alone with 'anonlab anonymize --debug'"


_DETECTORS: dict = {}


class Anonymizer:
    """The default job: analyse a file (whole, or in chunks for long videos) and render it in one pass.

    Instances are small and picklable; each worker process builds its detector once per settings digest.

    Args:
        detector_factory: ``factory(settings) -> detector``; default `anonlab.detect.build_detector`.
        warmup_seconds: frames decoded before a chunk's start so its tracks are warm at the seam.

    Methods used by the batch driver: ``plan(job) -> [Chunk]``, ``analyse(job, chunk, progress) ->
    ChunkResult``, ``finish(job, results, progress) -> dict``; calling the instance does all three for one
    file in one process.

    Raises:
        AnonlabError: (every method) the file cannot be read (`MediaError`) or its output written
            (`OutputError`); the driver records the line `error_line` makes of it as the file's failure.
    """

    def __init__(self, detector_factory: Callable[[Settings], Any] | None = None, warmup_seconds: float = 1.0):
        self.detector_factory = detector_factory
        self.warmup_seconds = float(warmup_seconds)

    def __call__(self, job: Job, progress: ProgressFn | None = None) -> dict:
        return self.finish(job, [self.analyse(job, Chunk.whole(), progress)], progress)

    def detector(self, settings: Settings):
        key = (settings.digest, self.detector_factory)
        if key not in _DETECTORS:
            if self.detector_factory is None:  # looked up at call time: a patched build_detector applies
                _DETECTORS[key] = detect.build_detector(settings)
            else:
                _DETECTORS[key] = self.detector_factory(settings)
        return _DETECTORS[key]

    # --- chunks ------------------------------------------------------------------------------------------
    def plan(self, job: Job) -> list[Chunk]:
        """Chunks of a long video, cut at keyframes near multiples of ``job.chunk_seconds``; else one chunk."""
        if not job.chunk_seconds or probe(job.src) != "video":
            return [Chunk.whole()]
        with VideoReader(job.src) as reader:
            n, fps, pts = reader.n_frames, reader.fps, reader.pts
        keyframes = keyframe_indices(job.src, pts)
        settings = settings_for_rate(job.settings, fps)
        return plan_chunks(n, fps, keyframes, job.chunk_seconds, settings.detect_every, self.warmup_seconds,
                           margin=seam_margin(settings))

    def analyse(self, job: Job, chunk: Chunk | None, progress: ProgressFn | None = None) -> ChunkResult:
        """Detect and track frames ``chunk.warm .. chunk.end`` (``None``: `Chunk.whole`); keep ``start .. stop``."""
        settings = job.settings
        t0 = time.perf_counter()
        media = open_media(job.src)
        try:
            n = media.n_frames
            if chunk is None:
                chunk = Chunk.whole()
            whole = chunk.is_whole(n)
            if chunk.stop == TO_END:  # now that the frame count is known
                chunk = Chunk.whole(n, chunk.index)
            detector = self.detector(settings)
            if whole and progress is not None:  # the render pass follows in this task: announce it
                progress("render", 0, n)
            t1 = time.perf_counter()
            total = chunk.end - chunk.warm
            done = 0
            tick = _Throttle()

            def step(k: int = 1) -> None:
                nonlocal done
                done += k
                if progress is not None and (tick() or done == total):
                    progress("analyse", done, total)

            if media.kind == "photo":  # every page alone, as `anonymize` does
                regions = analyse_pages(media, detector, settings, progress=step)
            else:
                regions = analyse_frames(media.frames(chunk.warm, chunk.end), detector,
                                         settings_for_rate(settings, media.fps), n_frames=n if whole else chunk.end,
                                         progress=step, fps=media.fps)
            if whole:
                regions = regions.clip(media.width, media.height)
            else:  # drop the warm-up frames; frames become relative to the chunk's start (stitch_chunks' input)
                regions = regions[(regions.frame >= chunk.start) & (regions.frame < chunk.stop)]
                regions = regions.replace(frame=regions.frame - chunk.start)
            t2 = time.perf_counter()
            return ChunkResult(
                chunk=chunk, regions=regions, input=_facts(job, media),
                times=media.times if chunk.start == 0 else None,
                damaged=sorted(d for d in media.damaged if chunk.start <= d < chunk.stop),
                models=list(getattr(detector, "models", [])),
                timings={"open_s": round(t1 - t0, 3), "analyse_s": round(t2 - t1, 3)},
            )
        finally:
            media.close()

    def finish(self, job: Job, results: Iterable[ChunkResult], progress: ProgressFn | None = None) -> dict:
        """Stitch the chunks' regions, render the output in one pass, write the report; returns the ledger row."""
        results = sorted(results, key=lambda r: r.chunk.start)
        first, facts = results[0], results[0].input
        settings = job.settings
        if len(results) == 1:
            regions = first.regions
        else:
            regions = stitch_chunks([(r.chunk.start, r.regions) for r in results], facts.n_frames, settings)
            regions = regions.clip(facts.width, facts.height)
        analysis = Analysis(
            path=Path(job.src), kind=facts.kind, n_frames=facts.n_frames, width=facts.width, height=facts.height,
            fps=facts.fps, times=first.times, regions=regions, settings=settings, models=first.models,
            damaged=sorted({d for r in results for d in r.damaged}),
            timings={"open_s": round(sum(r.timings.get("open_s", 0) for r in results), 3),
                     "analyse_s": round(sum(r.timings.get("analyse_s", 0) for r in results), 3)},
        )
        if progress is not None:
            progress("render", 0, analysis.n_frames)
        info = render(analysis, job.dst, overwrite=True, progress=False)
        if progress is not None:
            progress("render", analysis.n_frames, analysis.n_frames)
        out_sha = sha256_file(job.dst)
        # Hashed again here, after the input was read for the last time: the report and the ledger then name
        # exactly the bytes that were anonymised, even if the file changed since the batch planned the job.
        in_sha = sha256_file(job.src)
        if job.input_sha256 and in_sha != job.input_sha256:
            log.warning("%s: the input changed since the batch started; the ledger records the new content",
                        Path(job.src).name)
        timings = {**analysis.timings, "render_s": info["render_s"]}
        findings = red_team_check(analysis, Path(job.dst), info) if job.red_team else None
        if job.report:
            rep = make_report(
                settings=settings, models=analysis.models, input_path=Path(job.src), output_path=Path(job.dst),
                input_sha256=in_sha, output_sha256=out_sha, n_frames_in=analysis.n_frames,
                n_frames_out=info["frames"], regions=analysis.regions, timings=timings,
                extra={"damaged_frames": len(set(info["damaged"]) | set(analysis.damaged)), "kind": analysis.kind,
                       "chunks": len(results), **stream_fields(info),
                       **({"dropped_streams": dropped_streams(job.src)} if analysis.kind == "video" else {}),
                       **({} if findings is None else red_team_extra(findings))},
            )
            write_report({**rep, "red_team": findings} if findings is not None else rep, job.report)
        return {"output_sha256": out_sha, "output_size": os.path.getsize(job.dst), "input_sha256": in_sha,
                "kind": analysis.kind, "frames": analysis.n_frames, "chunks": len(results), "timings": timings,
                **({} if findings is None else {"red_team": findings})}


def _facts(job: Job, media) -> InputFacts:
    """The input's facts for a chunk's result: the hash the batch planned with (never hashed again per chunk)."""
    path = Path(job.src)
    return InputFacts(str(path), path.name, job.input_sha256 or None, path.stat().st_size, media.kind,
                      int(media.n_frames), int(media.width), int(media.height), float(media.fps))


class _Throttle:
    """True at most every ``interval`` seconds (progress messages cross process boundaries)."""

    def __init__(self, interval: float = 0.3):
        self.interval = interval
        self.last = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            return True
        return False
