"""The `Case` class: one input, its analysis, everything the analyst changed, and the review state.

A case is what an analyst works on in the workbench and what a reviewer signs off. Its analysis is a set
of tracks (`anonlab.case.tracks`); the analyst's work is an edit log replayed on them
(`anonlab.case.ops`), and `Case.effective_regions` is what gets masked: every visible frame of every
track that is not excluded, sorted by frame then track id. Export policy (`Case.export_check`, applied by
`anonlab.case.render.render_case` whatever gate is passed): a case that was never analysed exports nothing
unless the analyst chose to mask whole frames or to export their own boxes only (with a reason); a track
left unmasked must name who decided it. The class holds the state and the rules; the file format
(`anonlab.case.fileformat`), the disk (`anonlab.case.storage`) and rendering (`anonlab.case.render`)
live beside it; only the last imports the pipeline, so the rules of a case do not depend on it.

The module is long because `Case` is the one object the workbench, the review and the batch renderer drive:
its public methods are short wrappers over the operations, the format and the review gate, and they share
one lock and one list of observers. Split into mixins, each would reach into the others' state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from anonlab.case.fileformat import (
    DECISIONS, WITHOUT_ANALYSIS, Review, _Checker, _name, _now, analysis_tracks_json, check_header, dump_case,
    parse_json, read_analysis, read_input, read_models, read_settings,
)
from anonlab.case.ops import _apply_op, _check_op, _same_tracks
from anonlab.case.storage import CaseChangedElsewhere, check_unchanged, file_digest, read_case_text, write_case_text
from anonlab.case.tracks import Track, tracks_from_regions
from anonlab.errors import AnonlabError
from anonlab.media import sha256_file
from anonlab.media.audio import check_ranges
from anonlab.media.facts import InputFacts
from anonlab.regions import LABELS, Regions
from anonlab.review import ExportBlocked, advance_status, build_queue, export_allowed, make_override
from anonlab.settings import Settings

__all__ = ["Case"]

log = logging.getLogger("anonlab.case")  # the package's logger, as before the case was split into modules


class Case:
    """One input with its analysis, the analyst's edits and the review state.

    Build one with `Case.new` (opens the media), `Case.from_analysis`, `Case.blank` (tests, no file) or
    `Case.load`. Edit through the methods (`add_track`, `set_keys`, `delete_frames`, ...) or `apply`; each
    records one entry in the edit log, which `undo`/`redo` walk. With ``autosave`` on and a ``path`` set,
    every change is saved at once (atomically).
    """

    def __init__(self, input: InputFacts, settings: Settings | None = None, *, models: list[dict] | None = None,
                 analysis_tracks: dict[int, Track] | None = None, analysed: bool = False,
                 damaged: Iterable[int] = (), timings: dict | None = None, created: str | None = None,
                 scene_cuts: Iterable[int] = ()) -> None:
        self.input = input
        self.settings = settings or Settings()
        # JSON-safe copies (model records may hold paths).
        self.models = json.loads(json.dumps([dict(m) for m in (models or [])], default=str))
        self.analysed = analysed
        self.damaged = sorted(int(d) for d in damaged)
        self.scene_cuts = sorted(int(f) for f in scene_cuts)  # the review queue looks after each cut
        self.timings = json.loads(json.dumps(dict(timings or {}), default=str))
        self.created = created or _now()
        self.review = Review()
        self.path: Path | None = None
        #: The `anonlab.case.storage.file_digest` of the file at `path` as this case last read or wrote it
        #: (None: no file there yet). `save` without a path refuses to write over a file that no longer has it.
        self.disk_digest: str | None = None
        self.autosave = False
        self.save_error: str | None = None
        self._base: dict[int, Track] = dict(analysis_tracks or {})
        self.tracks: dict[int, Track] = dict(self._base)
        self.edits: list[dict] = []
        self._undo: list[dict[int, Track | None]] = []
        self._redo: list[dict] = []
        self._lock = threading.RLock()
        self._analysis_json: str | None = None
        self._listeners: list[Callable[[str], None]] = []
        self.name = input.name
        #: Who is working on the case now (the workbench's name field): recorded with every edit and decision.
        #: Not saved as such; each record carries its own name.
        self.actor: str | None = None

    # --- construction ----------------------------------------------------------------------------------
    @classmethod
    def blank(cls, name: str, *, n_frames: int, width: int, height: int, fps: float = 25.0,
              kind: str = "video", settings: Settings | None = None) -> "Case":
        """A case with no analysis and no file behind it (tests, or manual-only work)."""
        return cls(InputFacts(str(name), Path(name).name, None, None, kind, int(n_frames), int(width), int(height),
                              float(fps)), settings)

    @classmethod
    def new(cls, input_path: str | Path, settings: Settings | None = None, *, sha256: str | None = None) -> "Case":
        """A case for ``input_path`` with no analysis yet (metadata read from the file, sha256 computed).

        Raises:
            AnonlabError: (`MediaError`) the file is missing or not a photo or video anonlab reads.
        """
        return cls(InputFacts.read(input_path, sha256=sha256), settings)

    @classmethod
    def from_analysis(cls, analysis, *, sha256: str | None = None) -> "Case":
        """A case holding ``analysis`` (an `anonlab.pipeline.Analysis`), no edits."""
        case = cls(analysis.facts.on_disk(sha256=sha256), analysis.settings, models=list(analysis.models), analysed=True,
                   damaged=analysis.damaged, timings=analysis.timings,
                   scene_cuts=getattr(analysis, "scene_cuts", ()))
        case._set_base(tracks_from_regions(analysis.regions))
        return case

    def set_analysis(self, analysis) -> None:
        """Replace the analysis (a re-run) and replay the edits on it.

        Analysis track ids start above every id the edits create.

        Raises:
            AnonlabError: leaving the case unchanged, if the analysis is of another frame count, or an edit
                no longer applies (it named a track of the previous analysis).
        """
        if int(analysis.n_frames) != self.input.n_frames:
            raise AnonlabError(f"{self.name}: the analysis has {analysis.n_frames} frames, the case "
                               f"{self.input.n_frames}; it is not of this input")
        used: set[int] = set()
        on_analysis = 0
        for op in self.edits:
            if "track" not in op:  # the audio: no track, nothing of the analysis
                continue
            if op["op"] == "add_track":
                used.add(op["track"])
                continue
            if op["track"] not in used or op.get("other", op["track"]) not in used:
                on_analysis += 1
            if op["op"] == "split":
                used.add(op["new"])
        base = tracks_from_regions(analysis.regions, first_id=min(self._base, default=1))
        if set(base) & used:
            base = tracks_from_regions(analysis.regions, first_id=max(used, default=0) + 1)
        if on_analysis and not _same_tracks(base, self._base):
            # Track ids are positional: replaying "exclude track 3" on a different analysis could unmask
            # somebody else. Refuse rather than guess.
            raise AnonlabError(f"{self.name}: the case has {on_analysis} edit(s) on tracks of the previous analysis; "
                               "the new analysis conflicts with the case's edits. Start a new case or undo those "
                               "edits first")
        with self._lock:
            saved = (self._base, self.tracks, self._undo, self._redo, self.settings, self.models, self.analysed,
                     self.damaged, self.timings, self._analysis_json, self.scene_cuts)
            self.settings, self.analysed = analysis.settings, True
            self.models = json.loads(json.dumps([dict(m) for m in analysis.models], default=str))
            self.damaged = sorted(int(d) for d in analysis.damaged)
            self.scene_cuts = sorted(int(f) for f in getattr(analysis, "scene_cuts", ()))
            self.timings = json.loads(json.dumps(dict(analysis.timings), default=str))
            try:
                self._set_base(base)
            except AnonlabError as exc:
                (self._base, self.tracks, self._undo, self._redo, self.settings, self.models, self.analysed,
                 self.damaged, self.timings, self._analysis_json, self.scene_cuts) = saved
                raise AnonlabError(f"{self.name}: the new analysis conflicts with the case's edits ({exc}); "
                                   "start a new case or undo those edits first") from None
        self._changed("analysis")

    def _set_base(self, base: dict[int, Track], c: _Checker | None = None) -> None:
        c = c or _Checker(self.name, "")
        tracks = dict(base)
        undo = []
        for i, op in enumerate(self.edits):
            undo.append(_apply_op(tracks, op, self.input.n_frames, f"edits[{i}]", c))
        self._base, self.tracks, self._undo, self._redo = base, tracks, undo, []
        self._analysis_json = None

    # --- listeners and autosave ----------------------------------------------------------------------
    def observe(self, callback: Callable[[str], None]) -> None:
        """``callback(what)`` after every change: ``"edit"``, ``"undo"``, ``"redo"``, ``"review"``, ``"analysis"``."""
        self._listeners.append(callback)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """The lock for a change the analyst makes. Refused first (`CaseChangedElsewhere`) while the case is
        autosaved and its file changed elsewhere: a second tab kept showing the edits it could not save (a "new
        track 5" that was never kept, numbered out of step with the file) as if they were."""
        with self._lock:
            if self.autosave and self.path is not None:
                try:
                    check_unchanged(self.path, self.disk_digest)
                except CaseChangedElsewhere as exc:
                    self.save_error = str(exc)
                    raise
            yield

    def _changed(self, what: str) -> None:
        if self.autosave and self.path is not None:
            try:
                self.save()
                self.save_error = None
            except (AnonlabError, OSError) as exc:
                self.save_error = str(exc)
                log.warning("autosave failed: %s", exc)
        for cb in list(self._listeners):
            cb(what)

    # --- editing ---------------------------------------------------------------------------------------
    @property
    def edit_count(self) -> int:
        return len(self.edits)

    @property
    def can_undo(self) -> bool:
        return bool(self.edits)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def next_track_id(self) -> int:
        """An id no track has used in this case (also not one an undone edit created)."""
        ids = set(self.tracks) | set(self._base)
        for op in self.edits + self._redo:
            if "track" not in op:
                continue
            ids.add(op["track"])
            if op["op"] == "split":
                ids.add(op["new"])
        return max(ids, default=0) + 1

    def apply(self, op: dict) -> dict:
        """Validate and apply one edit (see `EDIT_OPS`); returns the op as recorded. Clears redo.

        Raises:
            AnonlabError: the edit is malformed or does not apply (a missing track, no box in those frames);
                the case is unchanged.
        """
        c = _Checker(self.name, "")
        with self._changing():
            op = _check_op(op, c, "edit", self.input.n_frames)
            op.setdefault("at", _now())
            if self.actor and "by" not in op:
                op["by"] = self.actor
            before = _apply_op(self.tracks, op, self.input.n_frames, "edit", c)
            self.edits.append(op)
            self._undo.append(before)
            self._redo.clear()
            self._reopen()
        self._changed("edit")
        return op

    def _reopen(self) -> None:
        if self.review.status != "draft":
            self.review.history.append({"status": "draft", "at": _now(), "by": None,
                                        "note": "reopened by an edit"})
            self.review.status, self.review.reviewer, self.review.at = "draft", None, None

    def undo(self) -> dict | None:
        """Revert the last edit; returns it (None if there is none)."""
        with self._changing():
            if not self.edits:
                return None
            op = self.edits.pop()
            for tid, old in self._undo.pop().items():
                if old is None:
                    self.tracks.pop(tid, None)
                else:
                    self.tracks[tid] = old
            self._redo.append(op)
            self._reopen()
        self._changed("undo")
        return op

    def redo(self) -> dict | None:
        """Re-apply the last undone edit; returns it (None if there is none)."""
        with self._changing():
            if not self._redo:
                return None
            op = self._redo.pop()
            before = _apply_op(self.tracks, op, self.input.n_frames, "edit", _Checker(self.name, ""))
            self.edits.append(op)
            self._undo.append(before)
            self._reopen()
        self._changed("redo")
        return op

    def add_track(self, label: str, keys: Mapping[int, Iterable[float]], *, tool: str = "draw") -> int:
        """A new analyst track with keyframes ``{frame: (x1, y1, x2, y2)}``; returns its id.

        Drawn where the analysis found the content turned (its tracks there carry a ``turn``), the track takes
        that turn, so its mask grows towards the chin as theirs do (`anonlab.regions.Regions.turn`)."""
        tid = self.next_track_id()
        turn = self.turn_at(min(int(f) for f in keys)) if keys else 0
        self.apply({"op": "add_track", "track": tid, "label": label,
                    "keys": [[int(f), *map(float, b)] for f, b in keys.items()], **({"turn": turn} if turn else {})})
        return tid

    def turn_at(self, frame: int) -> int:
        """The turn (quarter turns that stand it upright) of the content at ``frame``, as the analysis found it:
        the most common ``turn`` of the tracks with a box there, 0 where none has one."""
        with self._lock:
            turns = [t.turn for t in self.tracks.values() if t.turn and t.value(int(frame)) is not None]
        return max(set(turns), key=turns.count) if turns else 0

    def set_keys(self, track: int, keys: Mapping[int, Iterable[float]], *, source: str = "analyst",
                 tool: str = "move") -> None:
        """Set keyframes of ``track`` (move, resize, add a keyframe, or a follow's result)."""
        self.apply({"op": "set", "track": int(track), "keys": [[int(f), *map(float, b)] for f, b in keys.items()],
                    "source": source, "tool": tool})

    def delete_frames(self, track: int, start: int, stop: int | None = None) -> None:
        """Remove ``track``'s boxes in frames ``start .. stop-1`` (default: frame ``start`` only)."""
        self.apply({"op": "delete", "track": int(track), "frames": [int(start), int(start + 1 if stop is None else stop)]})

    def delete_track(self, track: int) -> None:
        self.apply({"op": "delete_track", "track": int(track)})

    def interpolate(self, track: int, start: int, stop: int) -> None:
        """Drop ``track``'s keyframes strictly between ``start`` and ``stop``: a straight line between them."""
        self.apply({"op": "interpolate", "track": int(track), "frames": [int(start), int(stop)]})

    def merge(self, track: int, other: int) -> None:
        """``other`` joins ``track`` (its id disappears)."""
        self.apply({"op": "merge", "track": int(track), "other": int(other)})

    def split(self, track: int, frame: int) -> int:
        """Frames from ``frame`` on become a new track; returns its id."""
        new = self.next_track_id()
        self.apply({"op": "split", "track": int(track), "frame": int(frame), "new": new})
        return new

    def exclude(self, track: int, reason: str, by: str | None = None) -> None:
        """Leave ``track`` unmasked, for ``reason``, decided by ``by`` (default `actor`).

        Both are recorded in the case and the report.

        Raises:
            AnonlabError: the reason or the name is missing, or the track does not exist.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise AnonlabError("leaving a track unmasked needs a reason")
        name = _name(by if by is not None else self.actor)
        if not name:
            raise AnonlabError("leaving a track unmasked needs your name (recorded with the reason)")
        self.apply({"op": "exclude", "track": int(track), "reason": reason, "by": name})

    def include(self, track: int) -> None:
        """Mask an excluded track again."""
        self.apply({"op": "include", "track": int(track)})

    def relabel(self, track: int, label: str) -> None:
        self.apply({"op": "label", "track": int(track), "label": label})

    # --- audio --------------------------------------------------------------------------------------------
    @property
    def audio(self) -> tuple[str, tuple[tuple[float, float], ...]]:
        """``(mode, ranges)``: what the export does to the sound track (`anonlab.media.audio`).

        The last ``audio`` edit's, else the settings' (``keep`` by default). Ranges are seconds on the video's
        timeline (frame 0 at 0), sorted and merged; with ``keep`` they are kept in the case (the analyst may
        mark them before choosing a mode) but not applied; with another mode and no ranges, the whole track.
        """
        for op in reversed(self.edits):
            if op["op"] == "audio":
                return op["mode"], tuple((float(a), float(b)) for a, b in op["ranges"])
        return self.settings.audio, tuple(self.settings.audio_ranges)

    def set_audio(self, mode: str | None = None, ranges: Iterable[Iterable[float]] | None = None) -> dict:
        """Record the sound track's mode and/or ranges (None: unchanged) as one edit (undoable); returns it.

        Raises:
            AnonlabError: an unknown mode or a bad range (start not before stop, negative, past the end of
                the media as the case knows it); the case is unchanged.
        """
        old_mode, old_ranges = self.audio
        ranges = old_ranges if ranges is None else [tuple(map(float, r)) for r in ranges]
        end = self.input.n_frames / self.input.fps if self.input.fps else None
        if end is not None:
            check_ranges(ranges, end + 1.0 / self.input.fps)  # the last frame lasts a frame
        return self.apply({"op": "audio", "mode": old_mode if mode is None else mode,
                           "ranges": [list(r) for r in ranges]})

    def export_settings(self) -> Settings:
        """The settings an export renders with: the case's, with its `audio` (ranges only with a mode)."""
        mode, ranges = self.audio
        if (mode, ranges) == (self.settings.audio, tuple(self.settings.audio_ranges)):
            return self.settings
        return self.settings.replace(audio=mode, audio_ranges=() if mode == "keep" else ranges)

    def review_queue(self, *, scene_cuts: Iterable[int] | None = None, disagreement_frames: Iterable[int] = (),
                     findings: Iterable = ()) -> list:
        """The review queue of the case as it is now (`anonlab.review.build_queue`): one card per track, its
        flags, what the analyst changed, what is left unmasked; ``disagreement_frames`` and red-team
        ``findings`` add what the analysis or a check of an export found (the workbench has them).
        ``scene_cuts``: first frames of shots (None: the case's)."""
        excluded = {tid: t.dense() for tid, t in self.tracks.items() if t.excluded is not None}
        cuts = self.scene_cuts if scene_cuts is None else list(scene_cuts)
        return build_queue(self.effective_regions(), self.input.n_frames, scene_cuts=cuts,
                           disagreement_frames=list(disagreement_frames), edited=self.review_edits(),
                           findings=list(findings), excluded=excluded, analysed=self.analysed)

    def review_edits(self) -> list:
        """What the analyst changed, for the review queue (`anonlab.review.build_queue`'s ``edited``):
        ids of current tracks an edit touched, and ``(frame, track_id)`` where a box or a whole track was
        deleted (a deletion leaves no row to point at)."""
        out: list = sorted(self.edited_tracks())
        for op, before in zip(self.edits, self._undo):
            if op["op"] == "delete":
                out.append((op["frames"][0], op["track"]))
            elif op["op"] == "delete_track":
                old = before.get(op["track"])
                span = old.span() if old is not None else None
                out.append((span[0] if span else 0, op["track"]))
        return out

    def edited_tracks(self) -> set[int]:
        """Ids (current) of tracks an edit touched or created."""
        ids = set()
        for op in self.edits:
            if "track" not in op:
                continue
            ids.add(op["track"])
            if op["op"] == "split":
                ids.add(op["new"])
        return ids & set(self.tracks)

    # --- regions ---------------------------------------------------------------------------------------
    def uncovered_box(self, track: int, frame: int) -> tuple[float, float, float, float] | None:
        """The box the analysis placed for ``track`` in ``frame`` (``x1, y1, x2, y2``, image pixels) where the
        analyst's edits left part of it unmasked (a box moved or shrunk off itself, `Track.uncovers`), else None.
        The review outlines it beside the analyst's box (a box moved off a face then shows the face it left)."""
        base, t = self._base.get(int(track)), self.tracks.get(int(track))
        if base is None or t is None or t is base:  # not the analysis's, deleted, or as the analysis found it
            return None
        found, now = base.value(int(frame)), t.value(int(frame))
        return tuple(found[:4]) if found is not None and now is not None and t.uncovers(found[:4], now[:4]) else None

    def uncovered_by_edits(self) -> dict[int, int]:
        """``{track id: frames}`` with an `uncovered_box`, for the report (counts only, never where); tracks left
        unmasked are reported as exclusions instead."""
        with self._lock:
            counts = {tid: sum(self.uncovered_box(tid, f) is not None for f in base.frames)
                      for tid, base in self._base.items() if tid in self.tracks and self.tracks[tid].excluded is None}
        return {tid: n for tid, n in counts.items() if n}

    def regions_at(self, n: int, *, include_excluded: bool = False) -> Regions:
        """This frame's boxes (what `effective_regions` holds for frame ``n``, in the same order)."""
        rows = []
        with self._lock:
            for tid in sorted(self.tracks):
                t = self.tracks[tid]
                if t.excluded is not None and not include_excluded:
                    continue
                v = t.value(n)
                if v is not None:
                    rows.append((tid, t.label, v))
        if not rows:
            return Regions.empty()
        return Regions(xyxy=[np.asarray(v.box, np.float64) for _, _, v in rows], score=[v.score for _, _, v in rows],
                       label=[lab for _, lab, _ in rows], track_id=[t for t, _, _ in rows],
                       source=[v.source for _, _, v in rows], frame=np.full(len(rows), n),
                       turn=[self.tracks[t].turn for t, _, _ in rows])

    def effective_regions(self) -> Regions:
        """What gets masked: every covered frame of every track not left unmasked, by frame then track id."""
        with self._lock:
            parts = [self.tracks[t].dense() for t in sorted(self.tracks) if self.tracks[t].excluded is None]
        merged = Regions.merge(parts)
        if not len(merged):
            return merged
        return merged[np.lexsort((merged.track_id, merged.frame))]

    def exclusions(self) -> list[dict]:
        """Tracks left unmasked: id, label, frame count and reason (no coordinates: fit for the report)."""
        return [{"track": t.id, "track_id": t.id, "label": LABELS[t.label], "frames": t.n_visible(),
                 "reason": t.excluded, "by": t.excluded_by[0], "at": t.excluded_by[1]}
                for t in sorted(self.tracks.values(), key=lambda t: t.id) if t.excluded is not None]

    def dismissals(self) -> list[dict]:
        """Review items dismissed ("nothing to mask here"), with who and when: they leave something visible.

        In the report's override table beside `exclusions` (item ids hold kinds and frame numbers only).
        """
        # "dismissed" alone read as "left unmasked" beside a false plate whose mask stayed: say what it decided
        return [{"label": "-", "reason": f"review item {item} dismissed: nothing to mask there (masks already "
                 "drawn stay)", **self.review.decided.get(item, {})}
                for item, d in sorted(self.review.decisions.items()) if d == "dismissed"]

    def summary(self) -> dict:
        """Counts for reports and the UI (no coordinates)."""
        by_label = {name: 0 for name in LABELS}
        for t in self.tracks.values():
            by_label[LABELS[t.label]] += 1
        return {"tracks": len(self.tracks), "tracks_by_label": by_label, "edits": self.edit_count,
                "edited_tracks": len(self.edited_tracks()), "excluded": self.exclusions(),
                "status": self.review.status, "reviewer": self.review.reviewer, "analysed": self.analysed,
                "regions": len(self.effective_regions())}

    # --- review ----------------------------------------------------------------------------------------
    def set_status(self, status: str, reviewer: str | None = None, note: str | None = None, *,
                   distinct_approver: bool = False) -> None:
        """draft -> reviewed -> approved, or back to draft; every step names its reviewer and is timed.

        The rules are `anonlab.review.advance_status`'s (one source of truth for the CLI, batch and the
        workbench); an edit after review reopens the case as draft by itself.

        Reviewed and approved also need every card of the case's `review_queue` decided, or an override with a
        reason: a case was approved with its cards open, and render-cases published it as "signed off".

        Raises:
            AnonlabError: the step is not allowed (approved straight from draft, the same status again, an
                unknown status), names nobody, or the case's review cards are undecided (`ExportBlocked`).
        """
        if status in ("reviewed", "approved"):
            ok, why = export_allowed(self.review_queue(), self.review.decisions, self.review.override)
            if not ok:
                raise ExportBlocked(f"not {status}: {why}")
        with self._changing():
            new = advance_status(self.review.to_dict(), status, reviewer or self.actor or "", note=note,
                                 distinct_approver=distinct_approver)
            r = self.review
            r.status, r.reviewer, r.at, r.history = new["status"], new["reviewer"], new["at"], list(new["history"])
        self._changed("review")

    def decide(self, item_id: str | Iterable[str], decision: str, by: str | None = None) -> None:
        """Record a review-queue decision (accepted, fixed or dismissed) on one item or several at once.

        ``by`` (default `actor`) is recorded with the time. A dismissal says "nothing to mask here", so it
        leaves something visible: it needs a name.

        Raises:
            ValueError: an unknown decision (a programming error: the workbench offers the three).
            AnonlabError: a dismissal without a name.
        """
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}; expected one of {', '.join(DECISIONS)}")
        name = _name(by if by is not None else self.actor)
        if decision == "dismissed" and not name:
            raise AnonlabError("a dismissal leaves something unmasked: type your name first (it is recorded)")
        ids = [item_id] if isinstance(item_id, str) else [str(i) for i in item_id]
        stamp = _now()
        with self._changing():
            for i in ids:
                self.review.decisions[i] = decision
                self.review.decided[i] = {"by": name or None, "at": stamp}
        self._changed("review")

    def forget_decisions(self, item_ids: Iterable[str]) -> None:
        """Drop the decisions on these items (an edit changed what was decided on); unknown ids are ignored."""
        with self._lock:
            gone = [i for i in item_ids if i in self.review.decisions]
            for i in gone:
                del self.review.decisions[i]
                self.review.decided.pop(i, None)
        if gone:
            self._changed("review")

    @property
    def redo_log(self) -> list[dict]:
        """Edits undone and not yet redone (the last one is redone next)."""
        return list(self._redo)

    def allow_without_analysis(self, mode: str, by: str | None = None, reason: str | None = None) -> None:
        """How this case may be exported although it was never analysed (recorded with the name and time).

        ``"whole_frames"``: every frame is masked edge to edge (nothing of the picture is published).
        ``"manual_only"``: only the analyst's own boxes are masked; needs a ``reason`` (the analyst says they
        checked every frame by eye). Both need a name. ``mode=None`` withdraws the choice.

        Raises:
            AnonlabError: an unknown mode, no name, or ``"manual_only"`` without a reason.
        """
        if mode is None:
            with self._changing():
                self.review.without_analysis = None
            self._changed("review")
            return
        if mode not in WITHOUT_ANALYSIS:
            raise AnonlabError(f"unknown export choice {mode!r}; expected one of {', '.join(WITHOUT_ANALYSIS)}")
        name = _name(by if by is not None else self.actor)
        if not name:
            raise AnonlabError("exporting a case that was never analysed needs your name (it is recorded)")
        record = {"mode": mode, "by": name, "at": _now()}
        if mode == "manual_only":
            why = " ".join(str(reason or "").split())
            if not why:
                raise AnonlabError("exporting only your own boxes without an analysis needs a reason (it is recorded)")
            record["reason"] = why[:2000]
        with self._changing():
            self.review.without_analysis = record
        self._changed("review")

    def export_check(self) -> set[int]:
        """Raise `AnonlabError` if this case may not be exported; returns the frames to mask whole.

        The one rule no gate can waive: a case that was never analysed exports nothing unless the analyst
        chose `allow_without_analysis` (whole frames masked, or their own boxes only, with a reason, and at
        least one box or a redacted sound track: otherwise the output would be the input under a name that says
        "anonymized").

        Raises:
            AnonlabError: the case may not be exported (never analysed and no choice recorded, "their own boxes
                only" with no box, or a track left unmasked with nobody named for it).
        """
        for t in self.tracks.values():
            if t.excluded is not None and not t.excluded_by[0]:
                raise AnonlabError(f"{self.input.name}: track {t.id} is left unmasked but nobody is named for it "
                                   "(a case from an older anonlab); mask it again, or leave it unmasked again "
                                   "with your name")
        if self.analysed:
            return set()
        choice = self.review.without_analysis
        if choice is None:
            raise AnonlabError(f"{self.input.name}: not analysed yet, so nothing would be masked but your own boxes; "
                               "analyse it first, or choose 'mask whole frames', or give a reason and your name "
                               "to export your own boxes only")
        if choice["mode"] == "whole_frames":
            return set(range(self.input.n_frames))
        if not self.tracks and self.audio[0] == "keep":  # no box, no decision, no sound redacted: the input
            raise AnonlabError(f"{self.input.name}: 'export my boxes only' was chosen but no box is there to mask; "
                               "draw boxes over what must be hidden, or analyse it, or choose 'mask whole frames'")
        return set()

    def set_risk_sample(self, frames: Iterable[int], seed: int) -> None:
        """Start a residual-risk check on these sampled frames (earlier checks are discarded)."""
        with self._changing():
            self.review.risk = {"seed": int(seed), "frames": sorted(int(f) for f in frames), "checked": {}}
        self._changed("review")

    def record_risk_check(self, frame: int, misses: int) -> None:
        """The analyst looked at sampled ``frame`` and counted ``misses`` objects left unmasked there.

        Raises:
            AnonlabError: ``frame`` is not in the sample, or ``misses`` is negative.
        """
        risk = self.review.risk
        if risk is None or int(frame) not in risk["frames"]:
            raise AnonlabError(f"frame {frame} is not in the residual-risk sample; draw a sample first")
        if int(misses) < 0:
            raise AnonlabError("the number of missed objects cannot be negative")
        with self._changing():
            risk["checked"][str(int(frame))] = int(misses)
        self._changed("review")

    def override_gate(self, reason: str, reviewer: str) -> None:
        """Let export go ahead with open review items; ``reason`` is recorded (and reported).

        Raises:
            AnonlabError: no reason or no name (`anonlab.review.make_override`).
        """
        override = make_override(reason, reviewer)
        with self._changing():
            self.review.override = override
        self._changed("review")

    # --- persistence -----------------------------------------------------------------------------------
    def _analysis_tracks_json(self) -> str:
        if self._analysis_json is None:
            self._analysis_json = analysis_tracks_json(self._base)
        return self._analysis_json

    def to_json(self) -> str:
        """The case file's text."""
        with self._lock:
            return dump_case(
                created=self.created, input=self.input.to_dict(), settings=self.settings.to_dict(),
                models=self.models,
                analysis=None if not self.analysed else {
                    "damaged": self.damaged, "scene_cuts": self.scene_cuts, "timings": self.timings},
                tracks_json=self._analysis_tracks_json() if self.analysed else None,
                edits=self.edits, review=self.review.to_dict())

    def to_dict(self) -> dict:
        return json.loads(self.to_json())

    def save(self, path: str | Path | None = None) -> Path:
        """Write the case atomically to ``path`` (default: where it was loaded from / last saved).

        Saved again where it was (no ``path``: autosave, the workbench), the file must still be the one this case
        read or wrote last (`disk_digest`): two browser tabs on one case each saved their own edits over the
        other's, and the second tab's mask was silently lost. A ``path`` given is written as asked.

        Raises:
            CaseChangedElsewhere: saved again where it was, and another tab, window or program changed the file
                since (nothing is written; reopen the case).
            AnonlabError: no path known, or the save failed (the previous file is unchanged).
        """
        again = path is None
        path = Path(path) if path is not None else self.path
        if path is None:
            raise AnonlabError(f"{self.name}: no case file path; pass one to save()")
        if again:
            self.disk_digest = write_case_text(path, self.to_json(), expect=self.disk_digest)
        else:
            self.disk_digest = write_case_text(path, self.to_json())
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Case":
        """Read a case file.

        Raises:
            AnonlabError: (one line, no coordinates) the file is missing, unreadable or malformed.
        """
        path = Path(path)
        text = read_case_text(path)
        case = cls.from_json(text, name=path.name)
        case.path, case.disk_digest = path, file_digest(text.encode("utf-8"))
        return case

    @classmethod
    def from_json(cls, text: str, *, name: str = "case") -> "Case":
        """Build a case from a case file's text (``name`` names it in errors).

        Raises:
            AnonlabError: the text is not valid JSON or not a valid case (see `from_dict`).
        """
        return cls.from_dict(parse_json(text, name), name=name)

    @classmethod
    def from_dict(cls, data: Any, *, name: str = "case") -> "Case":
        """Build a case from parsed JSON, checking every field (the format: `anonlab.case.fileformat`).

        Raises:
            AnonlabError: a field is missing, unknown, of the wrong type or out of range, or an edit does
                not apply; the message names the file and the field, never a coordinate.
        """
        c = _Checker(name)
        check_header(data, c)
        info = read_input(data["input"], c)
        n = info.n_frames
        settings = read_settings(data["settings"], c)
        models = read_models(data.get("models", []), c)
        analysis = data["analysis"]
        base, damaged, scene_cuts, timings = read_analysis(analysis, c, n)
        case = cls(info, settings, models=models, analysis_tracks=base, analysed=analysis is not None,
                   damaged=damaged, timings=timings, created=data.get("created"), scene_cuts=scene_cuts)
        edits = c.list_(data["edits"], "edits")
        case.name = name
        case.edits = [_check_op(op, c, f"edits[{i}]", n) for i, op in enumerate(edits)]
        if "edit_count" in data and c.int_(data["edit_count"], "edit_count", 0) != len(edits):
            c.fail("edit_count", "does not match the number of edits")
        case._set_base(base, c)  # replays the edits: an edit on a missing track fails here
        case.review = Review.from_dict(data["review"], c)
        return case

    # --- input -----------------------------------------------------------------------------------------
    def locate_input(self) -> Path:
        """The input file: its recorded path, or the same name beside the case file (moved together).

        Raises:
            AnonlabError: the input is in neither place.
        """
        p = Path(self.input.path)
        if p.exists():
            return p
        if self.path is not None and (self.path.parent / self.input.name).exists():
            return self.path.parent / self.input.name
        raise AnonlabError(f"{self.input.name}: the case's input file is missing (not at its recorded path, "
                           "nor beside the case file)")

    def verify_input(self, path: str | Path | None = None) -> Path:
        """Check the input's sha256 against the case; returns its path.

        Raises:
            AnonlabError: the input is missing, or its sha256 differs from the case's.
        """
        p = Path(path) if path is not None else self.locate_input()
        if self.input.sha256 is not None and sha256_file(p) != self.input.sha256:
            raise AnonlabError(f"{p.name}: the file differs from the one this case was made for (sha256 mismatch); "
                               "open the original input or start a new case")
        return p

    def __repr__(self) -> str:
        return (f"Case({self.input.name!r}, frames={self.input.n_frames}, tracks={len(self.tracks)}, "
                f"edits={self.edit_count}, status={self.review.status})")
