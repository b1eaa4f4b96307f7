"""The case's track model (CVAT's): a track is a label and keyframes ``frame -> Key``, or an *outside* marker.

Between two visible keyframes the box is linearly interpolated; an outside marker (``None``) ends the track
until the next keyframe. An analysis track becomes one keyframe per analysed frame (its source and score
kept), with outside markers at the gaps temporal safety left open (`tracks_from_regions`), so an unedited
case masks exactly what the analysis found. Coordinates of the analyst's edits are kept rounded to 1/100
pixel (scores to 1e-4); the analysis' own boxes keep their float32 values (so an unedited case renders
exactly like `anonlab.pipeline.render`); either way the case in memory and the case reloaded from disk are
identical. Tracks are replaced, never mutated, once they are part of a case's history (copy-on-write), which
is what lets undo restore the very objects it saved.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from anonlab.regions import ANALYST, INTERPOLATED, LABELS, NO_TRACK, Regions

__all__ = ["Key", "Track", "tracks_from_regions"]


class Key(NamedTuple):
    """A visible keyframe: its box, where it came from (an `anonlab.regions` source code) and its score.

    A tuple ``(x1, y1, x2, y2, source, score)``, so it compares equal to one and unpacks like one. An
    outside marker is ``None``, not a `Key`.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    source: int
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(x1, y1, x2, y2)``."""
        return self[:4]


def _q(v: float) -> float:
    """Coordinates are kept at 1/100 px so memory and disk agree exactly."""
    return round(float(v), 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def _qs(v: float) -> float:
    """Scores are kept at 1e-4."""
    return round(float(v), 4) + 0.0


def _f32(v: float) -> float:
    """A coordinate kept exactly as the analysis' float32 holds it (JSON writes and reads it back unchanged)."""
    return float(np.float32(v)) + 0.0


def _key(box: Iterable[float], source: int = ANALYST, score: float = 1.0, *, exact: bool = False) -> Key:
    """A keyframe. The analyst's boxes are rounded to 1/100 px; the analysis' own boxes (``exact``) keep their
    float32 value, so an unedited case masks the very pixels `anonlab.pipeline.render` masks (a box moved by
    a thousandth of a pixel can shift a mask's edge, and a mosaic's cells, by a whole pixel)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    q = _f32 if exact else _q
    return Key(q(x1), q(y1), q(x2), q(y2), int(source), _qs(score))


def _between(a: Key, b: Key, t: float) -> Key:
    """The box a fraction ``t`` of the way from ``a`` to ``b`` (source `INTERPOLATED`, the lower score)."""
    return Key(a.x1 + (b.x1 - a.x1) * t, a.y1 + (b.y1 - a.y1) * t, a.x2 + (b.x2 - a.x2) * t,
               a.y2 + (b.y2 - a.y2) * t, INTERPOLATED, min(a.score, b.score))


class Track:
    """One object through time: a label and keyframes ``frame -> Key | None`` (None = outside).

    Tracks are replaced, never mutated, once they are part of a case's history (copy-on-write), so undo
    restores the very objects it saved and their caches stay valid.
    """

    __slots__ = ("id", "label", "keys", "excluded", "excluded_by", "turn", "_frames", "_dense")

    def __init__(self, id: int, label: int, keys: dict[int, Key | None] | None = None,
                 excluded: str | None = None, excluded_by: tuple[str | None, str | None] = (None, None),
                 turn: int = 0) -> None:
        self.id = int(id)
        self.label = int(label)
        #: Quarter turns that stand the object upright (`anonlab.regions.Regions.turn`): the shot's orientation
        #: where the analysis found it; an analyst track takes the turn of the content it is drawn on (`Case.turn_at`).
        self.turn = int(turn)
        self.keys: dict[int, Key | None] = dict(keys or {})
        #: The reason this track is left unmasked (None: it is masked), and who decided it, when (UTC ISO).
        self.excluded = excluded
        self.excluded_by = excluded_by
        self._frames: list[int] | None = None
        self._dense: Regions | None = None

    def uncovers(self, old, new) -> bool:
        """Would replacing box ``old`` (``x1, y1, x2, y2``) by ``new`` leave part of it unmasked, on a track the
        analysis found (any keyframe not the analyst's)? Tracks the analyst drew alone are theirs to move."""
        if all(k is None or k.source == ANALYST for k in self.keys.values()):
            return False
        return new[0] > old[0] or new[1] > old[1] or new[2] < old[2] or new[3] < old[3]

    def copy(self) -> "Track":
        return Track(self.id, self.label, self.keys, self.excluded, self.excluded_by, self.turn)

    def changed(self) -> None:
        self._frames = None
        self._dense = None

    @property
    def frames(self) -> list[int]:
        """Frames holding a keyframe or an outside marker, sorted."""
        if self._frames is None:
            self._frames = sorted(self.keys)
        return self._frames

    def is_key(self, n: int) -> bool:
        """True where frame ``n`` holds a visible keyframe."""
        return self.keys.get(n) is not None

    def value(self, n: int) -> Key | None:
        """The box at frame ``n`` (interpolated between keyframes: source `INTERPOLATED`), or None."""
        k = self.keys.get(n, False)
        if k is not False:
            return k
        frames = self.frames
        i = bisect.bisect_left(frames, n)
        if i == 0 or i == len(frames):
            return None
        p, q = frames[i - 1], frames[i]
        a, b = self.keys[p], self.keys[q]
        if a is None or b is None:
            return None
        return _between(a, b, (n - p) / (q - p))

    def visible(self) -> Iterator[tuple[int, Key]]:
        """``(frame, key)`` for every frame the track covers, in order (interpolation included)."""
        frames = self.frames
        for i, f in enumerate(frames):
            k = self.keys[f]
            if k is None:
                continue
            yield f, k
            if i + 1 < len(frames):
                g = frames[i + 1]
                nxt = self.keys[g]
                if nxt is not None and g > f + 1:
                    for n in range(f + 1, g):
                        yield n, _between(k, nxt, (n - f) / (g - f))

    def span(self) -> tuple[int, int] | None:
        """First and last visible frame, or None for an empty track."""
        first = next((f for f in self.frames if self.keys[f] is not None), None)
        if first is None:
            return None
        last = next(f for f in reversed(self.frames) if self.keys[f] is not None)
        return first, last

    def dense(self) -> Regions:
        """All covered frames as `Regions` (cached until the track changes)."""
        if self._dense is None:
            rows = list(self.visible())
            if not rows:
                self._dense = Regions.empty()
            else:
                arr = np.asarray([k.box for _, k in rows], np.float64)
                self._dense = Regions(
                    xyxy=arr, score=[k.score for _, k in rows], label=np.full(len(rows), self.label),
                    track_id=np.full(len(rows), self.id), source=[k.source for _, k in rows],
                    frame=[f for f, _ in rows], turn=np.full(len(rows), self.turn),
                )
        return self._dense

    def n_visible(self) -> int:
        return len(self.dense())

    def normalise(self) -> None:
        """Drop leading, trailing and repeated outside markers."""
        keep: dict[int, Key | None] = {}
        prev_outside = True  # a leading marker is redundant
        for f in self.frames:
            k = self.keys[f]
            if k is None:
                if not prev_outside:
                    keep[f] = None
                prev_outside = True
            else:
                keep[f] = k
                prev_outside = False
        while keep and keep[next(reversed(keep))] is None:
            del keep[next(reversed(keep))]
        self.keys = keep
        self.changed()

    def __repr__(self) -> str:
        span = self.span()
        return (f"Track(id={self.id}, label={LABELS[self.label]}, keys={len(self.keys)}, "
                f"span={'-' if span is None else f'{span[0]}..{span[1]}'}, excluded={self.excluded is not None})")


def tracks_from_regions(regions: Regions, first_id: int = 1) -> dict[int, Track]:
    """Analysis `Regions` -> tracks with ids ``first_id ..`` (ordered by first frame, then original id).

    Rows without a track (``track_id == -1``) become one-frame tracks; a second row of one track in one
    frame starts a new track, so nothing is lost. Gaps in a track get an outside marker. A track's ``turn`` is
    its first row's.
    """
    groups: dict[tuple, dict[int, Key]] = {}
    turns: dict[tuple, int] = {}
    order = np.lexsort((np.arange(len(regions)), regions.frame, regions.track_id)) if len(regions) else []
    extra = 0
    for i in order:
        tid, f = int(regions.track_id[i]), int(regions.frame[i])
        key = _key(regions.xyxy[i], int(regions.source[i]), float(regions.score[i]), exact=True)
        if key.x2 <= key.x1 or key.y2 <= key.y1:
            continue  # no area after rounding: nothing to mask
        label, turn = int(regions.label[i]), int(regions.turn[i])
        if tid == NO_TRACK:
            extra += 1
            groups[("loose", extra, label)] = {f: key}
            turns[("loose", extra, label)] = turn
            continue
        g = groups.setdefault(("track", tid, label), {})
        turns.setdefault(("track", tid, label), turn)
        if f in g:
            extra += 1
            groups[("dup", extra, label)] = {f: key}
            turns[("dup", extra, label)] = turn
        else:
            g[f] = key
    ordered = sorted(groups.items(), key=lambda kv: (min(kv[1]), kv[0][0] != "track", kv[0][1]))
    tracks: dict[int, Track] = {}
    for i, (group, frame_keys) in enumerate(ordered):
        label = group[2]
        tid = first_id + i
        keys: dict[int, Key | None] = {}
        frames = sorted(frame_keys)
        for j, f in enumerate(frames):
            keys[f] = frame_keys[f]
            if j + 1 < len(frames) and frames[j + 1] > f + 1:
                keys[f + 1] = None
        tracks[tid] = Track(tid, label, keys, turn=turns[group])
    return tracks
