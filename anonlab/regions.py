"""`Regions`: the one data type that flows through detectors, trackers, maskers and exporters.

In the spirit of supervision's ``Detections``: parallel numpy arrays, validated on construction,
indexable with a boolean mask, an integer array or a slice. One `Regions` may hold the regions of one
frame (``frame`` all equal) or of a whole video (``frame`` says which frame each row belongs to).

Boxes are ``x1, y1, x2, y2`` in pixels of the *displayed* image (rotation already applied), top-left
origin, ``x2``/``y2`` exclusive, float32.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, fields
from typing import Iterable, Iterator

import numpy as np

from anonlab.errors import AnonlabError

#: Object classes anonlab masks. The index is the value stored in ``Regions.label``: new labels are appended,
#: never inserted, so codes in saved files keep their meaning. ``head`` is a head seen from any side (from
#: behind, turned away, too small for the face models), ``person`` a whole body, ``text`` a line of text
#: (name badges, documents, screens).
LABELS: tuple[str, ...] = ("face", "plate", "head", "person", "text")
FACE, PLATE, HEAD, PERSON, TEXT = range(5)

#: Where a region came from. ``interpolated`` fills a gap inside a track, ``extended`` is a mask held
#: before a track's first or after its last detection, ``analyst`` is drawn or corrected by a person.
SOURCES: tuple[str, ...] = ("detector", "tracker", "interpolated", "extended", "analyst")
DETECTOR, TRACKER, INTERPOLATED, EXTENDED, ANALYST = range(5)

NO_TRACK = -1


def label_code(name: str) -> int:
    """``"face"`` -> 0; raises `AnonlabError` for an unknown label."""
    try:
        return LABELS.index(name)
    except ValueError:
        raise AnonlabError(f"unknown label {name!r}; expected one of {', '.join(LABELS)}") from None


def source_code(name: str) -> int:
    """``"analyst"`` -> 4; raises `AnonlabError` for an unknown source."""
    try:
        return SOURCES.index(name)
    except ValueError:
        raise AnonlabError(f"unknown source {name!r}; expected one of {', '.join(SOURCES)}") from None


def _column(values, dtype, n: int, default) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=dtype)
    return np.asarray(values, dtype=dtype).reshape(-1)


@dataclass
class Regions:
    """Regions to mask, one row each.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes ``x1, y1, x2, y2`` in displayed-image pixels.
        score: ``(N,)`` float32 confidence in [0, 1]; 1.0 for analyst boxes.
        label: ``(N,)`` int8 index into `LABELS`.
        track_id: ``(N,)`` int64, `NO_TRACK` (-1) before tracking.
        source: ``(N,)`` int8 index into `SOURCES`.
        frame: ``(N,)`` int64 frame index (0 for a photo).
        turn: ``(N,)`` int8 quarter turns (counter-clockwise, as `numpy.rot90`) that stand the region's content
            upright: 0 for content that is upright as displayed; set where the detector found it in a turned
            frame (`anonlab.detect.orientation`). The masker extends a face's mask towards its chin by it.

    Example:
        >>> r = Regions(xyxy=[[10, 10, 50, 60]], score=[0.9], label=[FACE])
        >>> len(r), r.label_names.tolist()
        (1, ['face'])
    """

    xyxy: np.ndarray
    score: np.ndarray | None = None
    label: np.ndarray | None = None
    track_id: np.ndarray | None = None
    source: np.ndarray | None = None
    frame: np.ndarray | None = None
    turn: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.score = _column(self.score, np.float32, n, 1.0)
        self.label = _column(self.label, np.int8, n, FACE)
        self.track_id = _column(self.track_id, np.int64, n, NO_TRACK)
        self.source = _column(self.source, np.int8, n, DETECTOR)
        self.frame = _column(self.frame, np.int64, n, 0)
        self.turn = _column(self.turn, np.int8, n, 0)
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                raise ValueError(f"Regions.{f.name} has {len(getattr(self, f.name))} rows, xyxy has {n}")
        if n:
            if not np.isfinite(self.xyxy).all():
                raise ValueError("Regions.xyxy holds NaN or infinite coordinates")
            if ((self.label < 0) | (self.label >= len(LABELS))).any():
                raise ValueError("Regions.label holds an unknown label code")
            if ((self.source < 0) | (self.source >= len(SOURCES))).any():
                raise ValueError("Regions.source holds an unknown source code")
            if ((self.turn < 0) | (self.turn > 3)).any():
                raise ValueError("Regions.turn holds a turn other than 0-3 quarter turns")
            # Detectors sometimes emit degenerate boxes; keep the invariant x1<=x2, y1<=y2 by sorting.
            self.xyxy = np.concatenate(
                [np.minimum(self.xyxy[:, :2], self.xyxy[:, 2:]), np.maximum(self.xyxy[:, :2], self.xyxy[:, 2:])],
                axis=1,
            )

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> "Regions":
        """A `Regions` with no rows."""
        return cls(xyxy=np.zeros((0, 4), np.float32))

    @classmethod
    def merge(cls, parts: Iterable["Regions"]) -> "Regions":
        """Concatenate several `Regions` (row order kept)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    @classmethod
    def from_xywh(cls, xywh, **columns) -> "Regions":
        """Build from ``x, y, w, h`` boxes (the format of labels and ``--regions-out``)."""
        xywh = np.asarray(xywh, dtype=np.float32).reshape(-1, 4)
        return cls(xyxy=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), **columns)

    # --- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> "Regions":
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Regions(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def __iter__(self) -> Iterator["Regions"]:
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other) -> bool:
        if not isinstance(other, Regions):
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def copy(self) -> "Regions":
        return Regions(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def replace(self, **columns) -> "Regions":
        """A copy with some columns replaced (e.g. ``r.replace(source=ANALYST)``)."""
        values = {f.name: getattr(self, f.name).copy() for f in fields(self)}
        for name, value in columns.items():
            if np.ndim(value) == 0:
                value = np.full(len(self), value)
            values[name] = value
        return Regions(**values)

    @property
    def xywh(self) -> np.ndarray:
        return np.concatenate([self.xyxy[:, :2], self.xyxy[:, 2:] - self.xyxy[:, :2]], axis=1)

    @property
    def area(self) -> np.ndarray:
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return wh[:, 0] * wh[:, 1]

    @property
    def label_names(self) -> np.ndarray:
        return np.asarray(LABELS, dtype=object)[self.label.astype(int)] if len(self) else np.zeros(0, object)

    @property
    def source_names(self) -> np.ndarray:
        return np.asarray(SOURCES, dtype=object)[self.source.astype(int)] if len(self) else np.zeros(0, object)

    def at_frame(self, n: int) -> "Regions":
        """The rows of frame ``n``."""
        return self[self.frame == n]

    def by_frame(self, n_frames: int) -> list["Regions"]:
        """One `Regions` per frame ``0 .. n_frames-1`` (empty where a frame has none)."""
        order = np.argsort(self.frame, kind="stable")
        frames = self.frame[order]
        bounds = np.searchsorted(frames, np.arange(n_frames + 1))
        return [self[order[bounds[i] : bounds[i + 1]]] for i in range(n_frames)]

    def frame_index(self) -> "FrameIndex":
        """A lazy ``index[n] -> Regions of frame n``: like `by_frame`, without a `Regions` per frame in memory."""
        return FrameIndex(self)

    def with_label(self, *names: str) -> "Regions":
        codes = [label_code(n) for n in names]
        return self[np.isin(self.label, codes)]

    def clip(self, width: int, height: int) -> "Regions":
        """Boxes clipped to the image; rows left with no area are dropped."""
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        out = self.replace(xyxy=xyxy)
        w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
        return out[(w > 0) & (h > 0) & (w * h > 0)]  # a sliver whose float32 area underflows to 0 is no box

    def pad(self, fraction: float, pixels: float = 0.0) -> "Regions":
        """Grow each box by ``fraction`` of its size on every side, plus ``pixels``."""
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        grow = np.tile(wh * fraction + pixels, 2) * np.array([-1, -1, 1, 1], np.float32)
        return self.replace(xyxy=self.xyxy + grow)

    # --- interchange with the JSON line formats ------------------------------------------------
    def to_records(self, *, with_track: bool = True, ndigits: int = 1) -> list[dict]:
        """Rows as dicts in the ``--regions-out`` / labels format (``x, y, w, h`` pixels); ``turn`` only where
        it is not 0 (content upright as displayed, nearly every row)."""
        out = []
        for (x, y, w, h), s, lab, tid, src, turn in zip(
            self.xywh.tolist(), self.score.tolist(), self.label_names, self.track_id.tolist(), self.source_names,
            self.turn.tolist(),
        ):
            rec = {"label": lab, "x": round(x, ndigits), "y": round(y, ndigits), "w": round(w, ndigits),
                   "h": round(h, ndigits), "score": round(s, 4)}
            if with_track:
                rec = {"track_id": int(tid), **rec, "source": src}
            if turn:
                rec["turn"] = int(turn)
            out.append(rec)
        return out

    @classmethod
    def from_records(cls, records: list[dict], frame: int = 0) -> "Regions":
        """Inverse of `to_records`; missing ``score``/``source``/``track_id``/``turn`` take defaults."""
        if not records:
            return cls.empty()
        try:
            xywh = [[float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"])] for r in records]
            return cls.from_xywh(
                xywh,
                score=[float(r.get("score", 1.0)) for r in records],
                label=[label_code(r.get("label", "face")) for r in records],
                track_id=[int(r.get("track_id", NO_TRACK)) for r in records],
                source=[source_code(r.get("source", "detector")) for r in records],
                frame=[frame] * len(records),
                turn=[int(r.get("turn", 0)) for r in records],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AnonlabError(f"malformed region record: {exc}") from None

    def __repr__(self) -> str:
        labels = {name: int((self.label == i).sum()) for i, name in enumerate(LABELS)}
        return f"Regions(n={len(self)}, labels={labels}, frames={len(np.unique(self.frame))})"



class RegionsLog:
    """`Regions` appended a piece at a time (a frame's rows), held as few objects, in order.

    Each piece costs a `Regions` object (about 1 kB of Python objects beside its rows): fed frame by frame, an
    hour of 25 fps video would hold 90,000 of them, a memory that grows with the duration for nothing. Runs of
    ``block`` pieces behind the newest ``block`` are merged into one, so the log holds its rows plus one object
    per ``block`` pieces. Each piece has a key (the frame being fed when it was added); with keys that never
    decrease, `since` finds the pieces from a key on by bisection.

    Example:
        >>> log = RegionsLog(block=2)
        >>> for n in range(5):
        ...     log.append(Regions(xyxy=[[0, 0, 1, 1]], frame=[n]), key=n)
        >>> log.pieces, log.merged().frame.tolist(), log.since(3).frame.tolist()
        (4, [0, 1, 2, 3, 4], [3, 4])
        >>> log.since(1).frame.tolist()  # frames 0 and 1 were merged into one run, which comes whole
        [0, 1, 2, 3, 4]
    """

    def __init__(self, block: int = 256) -> None:
        self.block = max(1, int(block))
        self._parts: list[Regions] = []
        self._keys: list[int] = []  # a merged run keeps the key of its last piece
        self._done = 0  # leading entries that are merged runs

    def append(self, part: Regions, key: int) -> None:
        self._parts.append(part)
        self._keys.append(int(key))
        if len(self._parts) - self._done >= 2 * self.block:
            a, b = self._done, self._done + self.block
            self._parts[a:b] = [Regions.merge(self._parts[a:b])]
            self._keys[a:b] = [self._keys[b - 1]]
            self._done += 1

    @property
    def pieces(self) -> int:
        """Objects held (merged runs count one each)."""
        return len(self._parts)

    def merged(self) -> Regions:
        """Every row, in the order appended."""
        return Regions.merge(self._parts)

    def since(self, key: int) -> Regions:
        """The rows of every piece appended with a key >= ``key`` (a merged run whose last key is >= ``key``
        comes whole: filter its rows by frame)."""
        return Regions.merge(self._parts[bisect.bisect_left(self._keys, key):])


def _intersections(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas ``(N, M)`` and each box's area, for ``(N,4)``/``(M,4)`` xyxy boxes."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    return inter, (a[:, 2:] - a[:, :2]).prod(axis=1), (b[:, 2:] - b[:, :2]).prod(axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N,4)`` and ``(M,4)`` xyxy boxes -> ``(N, M)``."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def ios_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area -> ``(N, M)`` (a box inside another scores 1)."""
    inter, area_a, area_b = _intersections(a, b)
    small = np.minimum(area_a[:, None], area_b[None, :])
    return np.where(small > 0, inter / np.maximum(small, 1e-9), 0.0).astype(np.float32)


def nms(xyxy: np.ndarray, score: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first."""
    order = np.argsort(-np.asarray(score), kind="stable")
    keep: list[int] = []
    xyxy = np.asarray(xyxy, np.float32)
    while len(order):
        i = order[0]
        keep.append(int(i))
        if len(order) == 1:
            break
        ious = iou_matrix(xyxy[i : i + 1], xyxy[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class FrameIndex:
    """Rows of one frame at a time from a whole video's `Regions`, sorted once (`Regions.frame_index`).

    ``index[n]`` is ``regions.at_frame(n)`` in O(log rows): rendering an hour of video asks for every frame
    once, and a list of per-frame `Regions` would hold an object per frame for the whole video.
    """

    def __init__(self, regions: Regions) -> None:
        order = np.argsort(regions.frame, kind="stable")
        self._sorted = regions[order]
        self._frames = self._sorted.frame

    def __getitem__(self, n: int) -> Regions:
        lo, hi = np.searchsorted(self._frames, [n, n + 1])
        return self._sorted[lo:hi]

    __iter__ = None  # not a sequence: it has no length (frames without rows are simply empty)

    def count(self, n: int) -> int:
        """Rows in frame ``n``."""
        lo, hi = np.searchsorted(self._frames, [n, n + 1])
        return int(hi - lo)


def overlap_matrix(a: np.ndarray, b: np.ndarray, metric: str = "iou") -> np.ndarray:
    """Pairwise overlap of xyxy boxes: ``iou`` or ``ios`` (intersection over the smaller box)."""
    if metric == "iou":
        return iou_matrix(a, b)
    if metric != "ios":
        raise ValueError(f"unknown overlap metric {metric!r}")
    return ios_matrix(a, b)


def merge_regions(regions: Regions, iou: float = 0.4, method: str = "wbf", metric: str = "iou") -> Regions:
    """Merge overlapping boxes of the same label into one box each.

    Greedy by score: the best remaining box and every box overlapping it by more than ``iou`` form a
    cluster, replaced by one box:

    - ``wbf``: score-weighted mean of the cluster's coordinates (weighted box fusion), score = max;
    - ``nms``: the best box itself;
    - ``enclose``: the smallest box enclosing the cluster (safest for masking, loosest fit), score = max.

    Other columns (track id, source, frame) come from the cluster's best box. Rows of different labels
    or frames never merge.
    """
    if method not in ("wbf", "nms", "enclose"):
        raise ValueError(f"unknown merge method {method!r}")
    if len(regions) < 2:
        return regions
    out_rows: list[int] = []
    out_xyxy: list[np.ndarray] = []
    out_score: list[float] = []
    for key in np.unique(np.stack([regions.label.astype(np.int64), regions.frame], 1), axis=0):
        idx = np.nonzero((regions.label == key[0]) & (regions.frame == key[1]))[0]
        xyxy = regions.xyxy[idx]
        score = regions.score[idx]
        order = np.argsort(-score, kind="stable")
        overlap = overlap_matrix(xyxy, xyxy, metric)
        taken = np.zeros(len(idx), bool)
        for i in order:
            if taken[i]:
                continue
            members = np.nonzero(~taken & (overlap[i] > iou))[0]
            members = np.union1d(members, [i])
            taken[members] = True
            if method == "nms":
                box = xyxy[i]
            elif method == "enclose":
                box = np.concatenate([xyxy[members, :2].min(0), xyxy[members, 2:].max(0)])
            else:
                w = score[members].astype(np.float64) + 1e-6
                box = (xyxy[members] * w[:, None]).sum(0) / w.sum()
            out_rows.append(int(idx[i]))
            out_xyxy.append(np.asarray(box, np.float32))
            out_score.append(float(score[members].max()))
    kept = regions[np.asarray(out_rows, np.int64)]
    return kept.replace(xyxy=np.stack(out_xyxy), score=np.asarray(out_score, np.float32))
