"""The review item: what one decision before export is about, with its priority and its flags.

A `ReviewItem` is either a whole track (its card, listing the `Flag`s the track raised, its flagged frames
forming the filmstrip) or one frame-level finding; `PRIORITY` ranks the kinds and `DECISIONS` lists what an
analyst may decide. Ids are stable (``track:ID``, ``kind:frame:-1``) because the case file keys decisions by
them, so decisions survive a reload. These types live in a module of their own so that the export gate
(`anonlab.review.gate`) and the red-team pass (`anonlab.review.redteam`) can read and build items without
the queue builder, and the queue (`anonlab.review.queue`) can take the red team's findings as items
without an import cycle. Reasons carry frame numbers, counts, labels and scores only, never coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from anonlab.regions import NO_TRACK

__all__ = ["DECISIONS", "FILMSTRIP", "PRIORITY", "Flag", "ReviewItem"]

#: Priority of each kind of flag and item (higher = look first).
PRIORITY: dict[str, int] = {
    "exposed": 100,        # red team: a face/plate found in the output outside every mask
    "weak_mask": 95,       # red team: the detector still fires inside a mask
    "unmasked_gap": 90,    # frames inside a track with no mask at all (a gap too long to interpolate)
    "deleted": 88,         # the analyst deleted a mask (a box or a whole track): something became visible
    "excluded": 85,        # a track left unmasked on purpose: a second pair of eyes
    "disagreement": 80,    # one face detector finds a face that the other and the tracks do not cover
    "nothing_found": 75,   # an analysed video or photo with no track at all: was everything missed?
    "scene_cut": 70,       # first frame of a shot: the tracker starts from nothing
    "low_score": 60,       # a run of detections below the low-score line
    "doubtful": 56,        # red team: one detector, below the analysis threshold, outside the masks
    "gap": 50,             # an interpolated run: the mask is guessed, not detected
    "short_track": 45,     # few detections: a false positive, or a face seen only briefly
    "text_proposal": 42,   # text the model found: personal (a badge, a screen) or not (a road sign)?
    "edited": 40,          # the analyst's own edits get a second look
    "track_start": 30,     # does the mask start early enough?
    "track_end": 30,       # does it end late enough?
    "track": 20,           # a track card whose flags are all routine (accepted a page at a time)
}

#: Frames of one card's filmstrip shown at a time (a card with more flags pages through them).
FILMSTRIP = 8

#: What an analyst may decide about an item.
DECISIONS: tuple[str, ...] = ("accepted", "fixed", "dismissed")


@dataclass(frozen=True)
class Flag:
    """One reason to look at a track: a run of frames and one line (frames, counts, scores; no coordinates)."""

    kind: str
    first: int
    last: int
    reason: str
    routine: bool = False

    @property
    def priority(self) -> int:
        return PRIORITY[self.kind]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "first": self.first, "last": self.last, "reason": self.reason,
                "routine": self.routine}


@dataclass(frozen=True)
class ReviewItem:
    """One decision a person takes before export: a whole track (its card), or one frame-level finding.

    Attributes:
        id: stable key (decisions in the case file are keyed by it): ``"track:ID"`` for a track card,
            ``"kind:frame:-1"`` for a frame-level item (a red-team finding may add ``":k"``).
        kind: a `PRIORITY` key: a track card takes the kind of its most urgent non-routine flag, or
            ``"track"`` when every flag is routine.
        frame: the frame to show first.
        track_id: the track concerned, `NO_TRACK` (-1) for frame-level items.
        reason: one line for the analyst: frames, counts, scores; never coordinates.
        priority: higher first (`PRIORITY`).
        flags: the events that raised the card (what the old per-event queue listed one by one).
        routine: True when the card may be accepted with a page of others (`review_pages`).
    """

    id: str
    kind: str
    frame: int
    track_id: int
    reason: str
    priority: int
    flags: tuple[Flag, ...] = ()
    routine: bool = False

    @classmethod
    def make(cls, kind: str, frame: int, track_id: int = NO_TRACK, reason: str = "", *, id: str | None = None,
             flags: Iterable[Flag] = (), routine: bool = False) -> "ReviewItem":
        """An item of ``kind`` at ``frame``, its priority from `PRIORITY`; the id defaults to ``kind:frame:track``.

        Raises:
            ValueError: ``kind`` is not a `PRIORITY` key (a programming error: kinds come from code).
        """
        if kind not in PRIORITY:
            raise ValueError(f"unknown review item kind {kind!r}")
        frame, track_id = int(frame), int(track_id)
        return cls(id=id or f"{kind}:{frame}:{track_id}", kind=kind, frame=frame, track_id=track_id, reason=reason,
                   priority=PRIORITY[kind], flags=tuple(flags), routine=bool(routine))

    @property
    def frames(self) -> tuple[int, ...]:
        """The filmstrip: the frames that raised the flags, sorted. Every flagged run's first frame is there
        (each one click away); last frames are added, most urgent flags first, up to `FILMSTRIP` frames."""
        if not self.flags:
            return (self.frame,)
        out = {f.first for f in self.flags}
        for f in sorted(self.flags, key=lambda f: -f.priority):
            if len(out) >= FILMSTRIP:
                break
            out.add(f.last)
        return tuple(sorted(out))

    @property
    def n_events(self) -> int:
        """How many items a per-event queue (one item per flag) would make of this one: its flags, or 1."""
        return max(1, len(self.flags))

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "frame": self.frame, "track_id": self.track_id,
                "reason": self.reason, "priority": self.priority, "routine": self.routine,
                "flags": [f.to_dict() for f in self.flags]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ReviewItem":
        """The item `to_dict` wrote.

        Raises:
            KeyError: a required key (``kind``, ``frame``; a flag's ``kind``, ``first``, ``last``) is missing.
            ValueError: the kind is unknown (see `make`).
        """
        flags = [Flag(f["kind"], int(f["first"]), int(f["last"]), f.get("reason", ""), bool(f.get("routine")))
                 for f in d.get("flags", ())]
        return cls.make(d["kind"], d["frame"], d.get("track_id", NO_TRACK), d.get("reason", ""), id=d.get("id"),
                        flags=flags, routine=d.get("routine", False))


def _span(a: int, b: int) -> str:
    """A run of frames for a reason line: ``frame 3`` or ``frames 3-7``."""
    return f"frame {a}" if a == b else f"frames {a}-{b}"
