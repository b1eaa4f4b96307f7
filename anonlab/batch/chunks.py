"""Long videos in chunks: where to cut them, and what one chunk's analysis returns.

With ``chunk_seconds``, a video longer than 1.5 chunks is cut at keyframes into chunks that are analysed in
parallel (`plan_chunks`; the keyframes come from one demux pass, `keyframe_indices`). Each chunk decodes about a
second before its start (``warmup_seconds``, at least the tracker's reach, `anonlab.track.analyse.seam_margin`)
so its tracks and scene-cut detector are warm at the seam, and as far past its stop so a track that appears just
after the seam is followed back into it; those rows are dropped, the chunks are joined with
`anonlab.track.analyse.stitch_chunks` (tracks continued across seams, temporal safety recomputed over the whole
video, so a gap across a seam is filled as in an unchunked run), and the stitched regions are rendered in **one
render pass** over the whole video (`anonlab.batch.processors.Anonymizer.finish`). One pass is exact (no
re-encoded seams, no timestamp splicing, audio copied once) and rendering costs a fraction of analysis, so the
parallel part is where the time goes.

`Chunk` and `ChunkResult` are plain picklable data: they travel to pool and Dask workers and back by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from anonlab.media.facts import InputFacts

#: ``Chunk.stop`` of a whole-file chunk planned before the file's frame count is known: up to its end.
TO_END = -1


@dataclass(frozen=True)
class Chunk:
    """Frames ``start <= n < stop`` of a video, analysed from ``warm`` up to ``until`` (exclusive; ``None``:
    ``stop``). Only rows in ``start <= n < stop`` are kept: the frames before warm the tracks up, the frames
    after let a track that appears just past the seam be followed back into this chunk, as an unchunked run
    follows it (`anonlab.track.analyse.seam_margin`)."""

    index: int
    start: int
    stop: int
    warm: int
    until: int | None = None

    @classmethod
    def whole(cls, n_frames: int = TO_END, index: int = 0) -> "Chunk":
        """The whole file as one chunk: frames ``0 .. n_frames``, or up to the end (`TO_END`, the default) when
        the frame count is not known yet (`plan_chunks`; `anonlab.batch.processors.Anonymizer.analyse` fills it
        in when it opens the file)."""
        return cls(index, 0, n_frames, 0)

    def is_whole(self, n_frames: int) -> bool:
        """Whether this chunk covers all ``n_frames`` frames of its file (its regions are then the finished ones)."""
        return self.start == 0 and self.stop in (TO_END, n_frames)

    @property
    def end(self) -> int:
        """The frame after the last one analysed."""
        return self.stop if self.until is None else self.until


@dataclass
class ChunkResult:
    """What analysing one chunk returns: its regions with frames relative to ``chunk.start``.

    A whole-file chunk (`Chunk.whole`: ``start`` 0, ``stop`` = all frames) holds the finished regions (absolute
    frames, temporal safety applied), exactly as `anonlab.pipeline.analyse` would return them. ``input`` is the
    file's facts (`anonlab.media.facts.InputFacts`, the record a case and an analysis use too).
    """

    chunk: Chunk
    regions: Any
    input: InputFacts
    times: Any = None
    damaged: list[int] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def keyframe_indices(path: str | Path, pts) -> list[int]:
    """Indices (into the reader's sorted ``pts`` index) of the video's keyframes, by one demux pass.

    Raises:
        av.FFmpegError: the file cannot be opened (a demux error later only ends the list).
        IndexError: the file has no video stream.
    """
    keys = []
    with av.open(str(path), "r", metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.is_keyframe and not packet.is_discard:
                    keys.append(packet.pts)
        except av.FFmpegError:
            pass
    pts = np.asarray(pts)
    idx = np.searchsorted(pts, np.asarray(keys, dtype=np.int64))
    ok = idx < len(pts)
    ok[ok] = pts[idx[ok]] == np.asarray(keys, dtype=np.int64)[ok]
    return sorted(set(idx[ok].tolist()))


def plan_chunks(n_frames: int, fps: float, keyframes: list[int], chunk_seconds: float, detect_every: int = 1,
                warmup_seconds: float = 1.0, margin: int = 0) -> list[Chunk]:
    """Cut ``n_frames`` into chunks of about ``chunk_seconds`` starting at keyframes.

    A video shorter than 1.5 chunks stays whole (one `Chunk.whole`, ``stop`` -1). Each chunk's ``warm`` lies about
    ``warmup_seconds`` (at least two full-detection intervals, and at least ``margin`` frames) before its start,
    on a multiple of ``detect_every`` so full detections fall on the same frames as in an unchunked run; each
    chunk but the last is analysed ``margin`` frames past its stop (``until``), so tracks that appear there are
    followed back across the seam (`anonlab.track.analyse.seam_margin`: 50-odd frames at the defaults, about
    4 s of extra analysis per chunk at 25 fps).

    Raises:
        Nothing for counts out of range: a video that cannot be cut stays one whole-file chunk.
    """
    target = max(1, int(round(chunk_seconds * max(fps, 1e-3))))
    if n_frames < 1.5 * target or not keyframes:
        return [Chunk.whole()]
    keys = sorted(k for k in keyframes if 0 < k < n_frames)
    starts = [0]
    for k in keys:
        if k - starts[-1] >= target and n_frames - k >= target // 2:
            starts.append(k)
    if len(starts) == 1:
        return [Chunk.whole()]
    k = max(1, int(detect_every))
    warmup = max(2 * k, int(round(warmup_seconds * fps)), int(margin) + 2 * k)
    chunks = []
    for i, s in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else n_frames
        warm = 0 if s == 0 else max(0, (s - warmup) // k * k)
        until = min(n_frames, stop + int(margin)) if margin and stop < n_frames else None
        chunks.append(Chunk(i, s, stop, warm, until))
    return chunks
