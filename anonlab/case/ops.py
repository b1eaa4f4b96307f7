"""The edit log's operations: checking one (`_check_op`) and applying one (`_apply_op`).

The analyst's work is an ordered log of small JSON operations (`EDIT_OPS`) replayed on the analysis: add a
track, set keyframes (draw, move, resize, follow), delete frames or a track, interpolate, merge, split,
exclude ("leave unmasked", with a reason), include, relabel, and ``audio``: what the export does to the
sound track (a mode of `anonlab.media.audio.AUDIO_MODES` and ranges in seconds, the whole new state each
time, so the last ``audio`` op in the log is the case's audio and undo gives back the one before; it
changes no track). Every operation stores its result (a followed
track stores the boxes the tracker produced, not the request), so the same case file always gives the same
regions and the same output frames; undo/redo pop and push it. Each operation is one row of the table
`_OPS`: the fields it takes and one small function that applies it to the tracks, so `EDIT_OPS`, the
checker and the replay cannot disagree about which operations exist. Applying is all or nothing and
copy-on-write: a track is copied before its first change and the originals are returned, which is what
undo puts back.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from anonlab.case.fileformat import TOOLS, _Checker
from anonlab.case.tracks import Key, Track, _key
from anonlab.errors import AnonlabError
from anonlab.media.audio import AUDIO_MODES, check_ranges
from anonlab.regions import ANALYST, LABELS, TRACKER, label_code

__all__ = ["EDIT_OPS"]


# --- applying --------------------------------------------------------------------------------------------
class _Edit:
    """One edit being applied: the tracks it changes in place, where its errors point (``where``, e.g.
    ``edits[3]``), and ``before``: every track it replaced or created, as it was (None = did not exist)."""

    __slots__ = ("tracks", "n_frames", "where", "c", "before")

    def __init__(self, tracks: dict[int, Track], n_frames: int, where: str, c: _Checker) -> None:
        self.tracks = tracks
        self.n_frames = n_frames
        self.where = where
        self.c = c
        self.before: dict[int, Track | None] = {}

    def fail(self, field: str, what: str):
        self.c.fail(f"{self.where}.{field}", what)

    def existing(self, tid: int, what: str = "track") -> Track:
        if tid not in self.tracks:
            self.fail(what, "refers to a track that does not exist at this point")
        return self.tracks[tid]

    def writable(self, tid: int) -> Track:
        """The track to change: a copy of it, the first time this edit touches it."""
        t = self.existing(tid)
        if tid not in self.before:
            self.before[tid] = t
            t = self.tracks[tid] = t.copy()
        return t

    def materialise(self, t: Track, n: int) -> None:
        """Turn an interpolated frame into a keyframe (same value) before cutting the track there."""
        if 0 <= n < self.n_frames and n not in t.keys:
            v = t.value(n)
            if v is not None:
                t.keys[n] = _key(v.box, v.source, v.score)
                t.changed()

    def tidy(self) -> None:
        """Normalise every track the edit changed; one left without a visible frame disappears."""
        for i, old in self.before.items():
            t = self.tracks.get(i)
            if t is not None and t is not old:
                t.normalise()
                if t.span() is None:
                    del self.tracks[i]

    def rollback(self) -> None:
        for tid, old in self.before.items():
            if old is None:
                self.tracks.pop(tid, None)
            else:
                self.tracks[tid] = old


def _add_track(e: _Edit, op: dict) -> None:
    tid = op["track"]
    if tid in e.tracks:
        e.fail("track", "a new track needs an id that is not in use")
    e.before[tid] = None
    e.tracks[tid] = Track(tid, label_code(op["label"]), {f: _key(b) for f, *b in op["keys"]}, turn=op.get("turn", 0))


def _set(e: _Edit, op: dict) -> None:
    t = e.writable(op["track"])
    src = ANALYST if op.get("source", "analyst") == "analyst" else TRACKER
    for f, *b in op["keys"]:
        t.keys[f] = _key(b, src, 1.0)
    t.changed()


def _delete(e: _Edit, op: dict) -> None:
    t = e.writable(op["track"])
    a, b = op["frames"]
    if not any(t.value(n) is not None for n in range(a, b)):
        e.fail("frames", "the track has no box in these frames")
    e.materialise(t, a - 1)
    e.materialise(t, b)
    for f in [f for f in t.keys if a <= f < b]:
        del t.keys[f]
    t.keys[a] = None
    t.changed()


def _delete_track(e: _Edit, op: dict) -> None:
    tid = op["track"]
    e.before[tid] = e.existing(tid)
    del e.tracks[tid]


def _interpolate(e: _Edit, op: dict) -> None:
    t = e.writable(op["track"])
    a, b = op["frames"]
    e.materialise(t, a)
    e.materialise(t, b)
    if b >= e.n_frames or not (t.is_key(a) and t.is_key(b)):
        e.fail("frames", "interpolation needs a box at both ends")
    for f in [f for f in t.keys if a < f < b]:
        del t.keys[f]
    t.changed()


def _merge(e: _Edit, op: dict) -> None:
    t = e.writable(op["track"])
    other = e.existing(op["other"], "other")
    e.before[other.id] = other
    del e.tracks[other.id]
    _merge_into(t, other)
    if t.excluded is not None and other.excluded is None:
        t.excluded, t.excluded_by = None, (None, None)  # it holds frames nobody chose to leave unmasked


def _split(e: _Edit, op: dict) -> None:
    t = e.writable(op["track"])
    n, new = op["frame"], op["new"]
    if new in e.tracks:
        e.fail("new", "the new track needs an id that is not in use")
    e.materialise(t, n - 1)
    e.materialise(t, n)
    later = {f: k for f, k in t.keys.items() if f >= n}
    for f in later:
        del t.keys[f]
    t.changed()
    t.normalise()
    nt = Track(new, t.label, later, t.excluded, t.excluded_by, t.turn)
    nt.normalise()
    if t.span() is None or nt.span() is None:
        e.fail("frame", "a split needs boxes on both sides of the frame")
    e.before[new] = None
    e.tracks[new] = nt


def _exclude(e: _Edit, op: dict) -> None:
    t = e.writable(op["track"])
    t.excluded, t.excluded_by = op["reason"], (op.get("by"), op.get("at"))


def _include(e: _Edit, op: dict) -> None:
    t = e.writable(op["track"])
    if t.excluded is None:
        e.fail("track", "the track is not excluded")
    t.excluded, t.excluded_by = None, (None, None)


def _label(e: _Edit, op: dict) -> None:
    e.writable(op["track"]).label = label_code(op["label"])


def _audio(e: _Edit, op: dict) -> None:
    """The sound track's mode and ranges: read from the log (`anonlab.case.Case.audio`), no track changes."""


class _Op(NamedTuple):
    """One operation: the fields it needs and may carry (besides ``op``, ``at`` and ``by``), and how it applies."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    apply: Callable[[_Edit, dict], None]


#: Every edit operation, in the order error messages list them.
_OPS: dict[str, _Op] = {
    "add_track": _Op(("track", "label", "keys"), ("turn",), _add_track),
    "set": _Op(("track", "keys"), ("source", "tool"), _set),
    "delete": _Op(("track", "frames"), (), _delete),
    "delete_track": _Op(("track",), (), _delete_track),
    "interpolate": _Op(("track", "frames"), (), _interpolate),
    "merge": _Op(("track", "other"), (), _merge),
    "split": _Op(("track", "frame", "new"), (), _split),
    "exclude": _Op(("track", "reason"), (), _exclude),
    "include": _Op(("track",), (), _include),
    "label": _Op(("track", "label"), (), _label),
    "audio": _Op(("mode", "ranges"), (), _audio),
}
EDIT_OPS = tuple(_OPS)


def _apply_op(tracks: dict[int, Track], op: dict, n_frames: int, where: str, c: _Checker) -> dict[int, Track | None]:
    """Apply a validated edit to ``tracks`` in place; returns the replaced tracks (None = did not exist).

    All or nothing: if the edit fails, ``tracks`` is restored before the error propagates.
    """
    edit = _Edit(tracks, n_frames, where, c)
    try:
        _OPS[op["op"]].apply(edit, op)
        edit.tidy()
    except BaseException:
        edit.rollback()
        raise
    return edit.before


# --- checking --------------------------------------------------------------------------------------------
def _check_op(op, c: _Checker, where: str, n_frames: int) -> dict:
    """Validate one edit's shape and values; returns a normalised copy (coordinates rounded).

    Whether the edit applies (its track exists, the frames hold boxes) is `_apply_op`'s check.
    """
    if not isinstance(op, dict) or "op" not in op:
        c.fail(where, "an edit is an object with an 'op' field")
    kind = c.str_(op["op"], f"{where}.op", EDIT_OPS)
    spec = _OPS[kind]
    c.obj(op, where, ("op", *spec.required), ("at", "by", *spec.optional))
    out: dict[str, Any] = {"op": kind}
    if "track" in spec.required:
        out["track"] = c.int_(op["track"], f"{where}.track", 0, 2**62)
    if "keys" in spec.required:
        keys = c.list_(op["keys"], f"{where}.keys", maxlen=10_000_000)
        if not keys:
            c.fail(f"{where}.keys", "no keyframes")
        seen = set()
        rows = []
        for j, kf in enumerate(keys):
            f, box = c.frame_box(kf, f"{where}.keys[{j}]", n_frames)
            if f in seen:
                c.fail(f"{where}.keys[{j}]", "two keyframes for one frame")
            seen.add(f)
            k = _key(box)
            if not (k.x2 > k.x1 and k.y2 > k.y1):
                c.fail(f"{where}.keys[{j}]", "box has no area")
            rows.append([f, *k.box])
        out["keys"] = sorted(rows)
    if kind == "add_track":
        out["label"] = c.str_(op["label"], f"{where}.label", LABELS)
        if "turn" in op:  # drawn in a shot the analysis found turned (Regions.turn): masked towards that chin
            out["turn"] = c.int_(op["turn"], f"{where}.turn", 0, 3)
    if kind == "label":
        out["label"] = c.str_(op["label"], f"{where}.label", LABELS)
    if kind == "set":
        out["source"] = c.str_(op.get("source", "analyst"), f"{where}.source", ("analyst", "tracker"))
        if "tool" in op:
            out["tool"] = c.str_(op["tool"], f"{where}.tool", TOOLS)
    if kind in ("delete", "interpolate"):
        fr = c.list_(op["frames"], f"{where}.frames")
        if len(fr) != 2:
            c.fail(f"{where}.frames", "expected [first, stop]")
        a = c.int_(fr[0], f"{where}.frames", 0, n_frames)
        b = c.int_(fr[1], f"{where}.frames", 0, n_frames)
        if b <= a:
            c.fail(f"{where}.frames", "empty frame range")
        out["frames"] = [a, b]
    if kind == "merge":
        out["other"] = c.int_(op["other"], f"{where}.other", 0, 2**62)
        if out["other"] == out["track"]:
            c.fail(f"{where}.other", "a track cannot be merged with itself")
    if kind == "split":
        out["frame"] = c.int_(op["frame"], f"{where}.frame", 0, n_frames - 1)
        out["new"] = c.int_(op["new"], f"{where}.new", 0, 2**62)
    if kind == "exclude":
        out["reason"] = c.str_(op["reason"], f"{where}.reason", nonempty=True, maxlen=2000).strip()
    if kind == "audio":
        out["mode"] = c.str_(op["mode"], f"{where}.mode", AUDIO_MODES)
        ranges = []
        for j, r in enumerate(c.list_(op["ranges"], f"{where}.ranges", maxlen=100_000)):
            c.list_(r, f"{where}.ranges[{j}]")
            if len(r) != 2:
                c.fail(f"{where}.ranges[{j}]", "a range is [start, stop] in seconds")
            ranges.append([c.num(v, f"{where}.ranges[{j}]", 0, 1e7) for v in r])
        try:
            out["ranges"] = [list(r) for r in check_ranges(ranges)]
        except AnonlabError as exc:
            c.fail(f"{where}.ranges", str(exc))
    if "at" in op:
        out["at"] = c.str_(op["at"], f"{where}.at", maxlen=64)
    if "by" in op:
        out["by"] = c.str_(op["by"], f"{where}.by", maxlen=200)
    return out


# --- helpers ---------------------------------------------------------------------------------------------
def _same_tracks(a: dict[int, Track], b: dict[int, Track]) -> bool:
    return a.keys() == b.keys() and all(a[t].label == b[t].label and a[t].keys == b[t].keys for t in a)


def _merge_into(t: Track, other: Track) -> None:
    """``other``'s frames join ``t``. Where both have a box, their union is masked (source analyst).

    A gap that lies between a frame of one track and a frame of the other is interpolated (the fragments
    of one object joined); a gap inside one of the two tracks stays open.
    """
    da = {f: k for f, k in t.visible()}
    db = {f: k for f, k in other.visible()}
    owner: dict[int, int] = {}
    keys: dict[int, Key | None] = {}
    for f in sorted(set(da) | set(db)):
        a, b = da.get(f), db.get(f)
        if a is not None and b is not None:
            keys[f] = _key((min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2)), ANALYST,
                           min(a.score, b.score))
            owner[f] = 3
        else:
            k = a if a is not None else b
            keys[f] = _key(k.box, k.source, k.score)
            owner[f] = 1 if a is not None else 2
    frames = sorted(keys)
    for f, g in zip(frames, frames[1:]):
        if g > f + 1 and (owner[f] & owner[g]):
            keys[f + 1] = None  # a gap inside one track: keep it open
    t.keys = keys
    t.changed()
