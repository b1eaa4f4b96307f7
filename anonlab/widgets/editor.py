"""The workbench's editing model: plain Python, no ipywidgets, driven directly by the tests.

ipyannotations' pattern: the view (`anonlab.widgets.workbench`) only forwards pointer and key events to
`EditorModel.on_down/on_move/on_up(x, y)` and `on_key(key)` (canvas pixels), and redraws when the model
tells it what changed. The model holds:

* the current frame, the selection, hidden tracks, the masked-preview switch, flagged frames;
* the `anonlab.widgets.viewport.Viewport` (canvas <-> image, zoom, pan);
* tools: press on empty canvas and drag = **draw** a new track; press on a box = select and **move**; press
  on a handle of the selected box = **resize**; Delete = delete the region in this frame (Shift: the whole
  track); ``k`` = keyframe; ``f``/``F`` = **follow** forward/backward with OpenCV's CSRT tracker; split,
  merge, exclude ("leave unmasked", with a reason), relabel, interpolate;
* undo/redo of every edit: the case's edit log (`anonlab.case.Case.undo`), one entry per edit;
* the sound track (voices and spoken names are personal data too): in and out marks at the current frame,
  ranges added from them or removed, and the mode (keep, mute, beep, voice), each change one case edit
  (`anonlab.case.Case.set_audio`).

Pictures come from `anonlab.widgets.frames.FrameSource`, the background analysis from `anonlab.widgets.jobs`;
what the view draws (`BoxView`, `TrackSummary`, colours) is in `anonlab.widgets.boxes`. All edits go through
the `Case`, which records them and autosaves; the model observes it: edits made elsewhere refresh the view too.

The module is long because the pointer tools are one state machine (press, move, release, leave) over one
`Drag`: split across modules, a drag's states would be read in several places.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.regions import ANALYST, FACE, LABELS, SOURCES, Regions
from anonlab.render.mask import mask_frame
from anonlab.widgets.boxes import EXCLUDED_COLOR, BoxView, TrackSummary, handle_points, track_color
from anonlab.widgets.follow import csrt_follow
from anonlab.widgets.frames import FrameSource
from anonlab.widgets.keymap import find_binding
from anonlab.widgets.soundtrack import SoundTrackEditing
from anonlab.widgets.viewport import Viewport

#: Pointer tolerance around a handle, canvas pixels.
HANDLE_PX = 7.0
#: A press that moves less than this (canvas px) is a click, not a drag.
DRAG_PX = 3.0
#: Smallest box a drag draws, image pixels per side.
MIN_BOX = 4.0
#: Frames `follow` tracks when not told otherwise.
FOLLOW_FRAMES = 50
#: Frames are scaled so their longer side is at most this before CSRT tracking (speed); small boxes are
#: tracked at full resolution.
FOLLOW_MAX_SIDE = 960


@dataclass
class Drag:
    """A press in progress: what it does, where it started, and the box it would commit now."""

    kind: str  # "draw" | "move" | "resize"
    start: tuple[float, float]  # canvas
    box0: tuple[float, float, float, float] | None  # image, the box before the drag
    box: tuple[float, float, float, float] | None  # image, the preview
    track: int | None = None
    handle: str | None = None
    moved: bool = False


class EditorModel(SoundTrackEditing):
    """State and behaviour of the workbench; the view only draws it and forwards events.

    Args:
        case: the `Case` being edited.
        frames: a `FrameSource` (or None: no pictures, e.g. a test of pure editing).
        canvas_size: ``(width, height)`` of the canvas in pixels.

    Listeners registered with `observe` receive a set of what changed: ``"frame"`` (new picture),
    ``"boxes"`` (the region layer), ``"drag"`` (the interaction layer), ``"tracks"`` (the track list),
    ``"selection"``, ``"view"`` (zoom/pan/masked preview), ``"message"``.
    """

    def __init__(self, case: Case, frames: FrameSource | None = None, canvas_size: tuple[int, int] = (960, 540)) -> None:
        self.case = case
        self.source = frames
        info = case.input
        self.n_frames = info.n_frames
        self.viewport = Viewport(info.width, info.height, int(canvas_size[0]), int(canvas_size[1]),
                                 aspect=getattr(frames, "pixel_aspect", 1.0))
        if frames is not None and len(getattr(frames, "times", [])) == self.n_frames:
            self.times = frames.times
        else:
            self.times = np.arange(self.n_frames) / (info.fps or 25.0)
        self.frame = 0
        self.selected: int | None = None
        self.hidden: set[int] = set()
        #: Label layers switched off in the view (``"text"``...): their boxes are not drawn; the export masks them.
        self.hidden_labels: set[str] = set()
        #: The masked preview is on by default: the analyst first sees what will be published.
        self.show_masked = True
        self.draw_label = "face"
        self.drag: Drag | None = None
        self.message = ""
        #: The last message of each group of controls (``tools``, ``player``, ``status``, ``review``): the view
        #: shows each next to its controls; an action's success replaces its group's old error (in `failed`).
        self.messages: dict[str, str] = {}
        self.failed: set[str] = set()
        #: While an analysis runs: the regions of the frames already settled (`AnalysisJob`), drawn dashed, and
        #: the first frame not settled yet (None: no analysis running).
        self.provisional: Regions | None = None
        self.settled: int | None = None
        #: Frames the review queue wants looked at (the review panel sets it); ``n``/``N`` and the view's buttons jump.
        self.flagged_frames: list[int] = []
        self.follow_frames = FOLLOW_FRAMES
        #: The sound-track range being marked: start and stop in seconds (None: not set yet).
        self.audio_in: float | None = None
        self.audio_out: float | None = None
        self._listeners: list[Callable[[set[str]], None]] = []
        case.observe(self._on_case)

    # --- notification ------------------------------------------------------------------------------
    def observe(self, callback: Callable[[set[str]], None]) -> None:
        self._listeners.append(callback)

    def _notify(self, *what: str) -> None:
        changes = set(what)
        for cb in list(self._listeners):
            cb(changes)

    def _on_case(self, what: str) -> None:
        if self.selected is not None and self.selected not in self.case.tracks:
            self.selected = None
        self.hidden &= set(self.case.tracks)
        if what in ("edit", "undo", "redo", "review"):  # "export blocked" outlived the decisions answering it
            self.messages.pop("status", None)
            self.failed.discard("status")
        self._notify("boxes", "tracks", "selection", "case", *(("analysis",) if what == "analysis" else ()))

    def say(self, message: str, where: str = "tools", *, error: bool = False) -> None:
        """Show ``message`` next to the ``where`` group of controls (it replaces that group's last one, so an
        old error goes once the next action there succeeds); ``error`` marks it as one (`failed`)."""
        self.message = message
        self.messages[where] = message
        (self.failed.add if error else self.failed.discard)(where)
        self._notify("message")

    def name_typed(self) -> None:
        """The analyst typed a name: drop the errors that asked for one ("export failed: type your name under
        'analyst' first" stayed in red after the name was there)."""
        stale = [w for w in self.failed if "type your name" in self.messages.get(w, "")]
        for where in stale:
            self._stale_error(where)
        if stale:
            self.message = ""
            self._notify("message")

    def _stale_error(self, where: str) -> tuple[str, ...]:
        """Drop ``where``'s error once the analyst did what it asked ("select a box first" after a selection): it
        stayed in red beside the track selected since. Returns the change to notify."""
        if where not in self.failed:
            return ()
        self.failed.discard(where)
        self.messages.pop(where, None)
        return ("message",)

    def set_provisional(self, regions: Regions | None, settled: int = 0) -> None:
        """The settled part of a running analysis (None when it ends): its regions, and the frames before
        ``settled`` whose regions are final."""
        self.provisional, self.settled = regions, (None if regions is None else int(settled))
        self._notify("boxes", "frame")

    def unsettled(self, n: int | None = None) -> bool:
        """Is frame ``n`` (default: current) still without regions, a first analysis running? The masked view
        hides it whole: shown as it was, a bare face sat under "masked" while the status said masks showed."""
        n = self.frame if n is None else n
        return self.provisional is not None and not self.case.analysed and n >= (self.settled or 0)

    def provisional_at(self, n: int | None = None) -> Regions:
        p = self.provisional
        return Regions.empty() if p is None else p.at_frame(self.frame if n is None else n)

    def _need_name(self, what: str) -> None:
        if not (self.case.actor or "").strip():
            raise AnonlabError(f"{what} leaves something unmasked: type your name under 'analyst' first "
                               "(it is recorded)")

    # --- navigation --------------------------------------------------------------------------------
    def seek(self, n: int) -> int:
        n = int(min(max(int(n), 0), self.n_frames - 1))
        if n != self.frame:
            self.drag = None
            self.frame = n
            self._notify("frame", "boxes", "drag", *self._stale_error("player"))
        return self.frame

    def step(self, k: int) -> int:
        return self.seek(self.frame + k)

    @property
    def time(self) -> float:
        return float(self.times[self.frame])

    def set_flagged(self, frames: Iterable[int]) -> None:
        self.flagged_frames = sorted({int(f) for f in frames if 0 <= int(f) < self.n_frames})
        self._notify("flags")

    def _single_frame(self) -> bool:
        """A photo (one frame) has no other frame to step to: say that, not "no flagged frame after this one",
        which reads as if a search had run and found nothing; and not in red, as nothing failed."""
        if self.n_frames > 1:
            return False
        self.say("a photo is one frame: nothing to step to", "player")
        return True

    def next_flagged(self) -> int | None:
        if self._single_frame():
            return None
        later = [f for f in self.flagged_frames if f > self.frame]
        if later:
            self.say("", "player")
            self.seek(later[0])
            return later[0]
        self.say("no flagged frame after this one", "player", error=True)
        return None

    def prev_flagged(self) -> int | None:
        if self._single_frame():
            return None
        earlier = [f for f in self.flagged_frames if f < self.frame]
        if earlier:
            self.say("", "player")
            self.seek(earlier[-1])
            return earlier[-1]
        self.say("no flagged frame before this one", "player", error=True)
        return None

    # --- selection and view state -------------------------------------------------------------------
    def select(self, track: int | None) -> None:
        if track is not None and track not in self.case.tracks:
            raise AnonlabError(f"track {track} does not exist")
        if track != self.selected:
            self.selected = track
            self._notify("selection", "boxes", *(self._stale_error("tools") if track is not None else ()))

    def toggle_hidden(self, track: int) -> None:
        self.hidden ^= {int(track)}
        if track in self.hidden and self.selected == track:
            self.selected = None
        self._notify("boxes", "tracks", "selection")

    def toggle_label_layer(self, label: str) -> None:
        """Show or hide every box of one label (a layer) in the view; hiding is only a view, the export masks them.

        Raises:
            AnonlabError: an unknown label.
        """
        if label not in LABELS:
            raise AnonlabError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")
        self.hidden_labels ^= {label}
        if self.selected is not None and LABELS[self.case.tracks[self.selected].label] in self.hidden_labels:
            self.selected = None
        self._notify("boxes", "tracks", "selection")

    def toggle_masked(self) -> None:
        self.show_masked = not self.show_masked
        self._notify("view", "frame")

    def zoom(self, factor: float, x: float | None = None, y: float | None = None) -> None:
        vp = self.viewport
        vp.zoom_at(factor, vp.canvas_w / 2 if x is None else x, vp.canvas_h / 2 if y is None else y)
        self._notify("view", "frame", "boxes", "drag")

    def reset_zoom(self) -> None:
        self.viewport.reset()
        self._notify("view", "frame", "boxes", "drag")

    def resize_canvas(self, width: int, height: int) -> None:
        vp = self.viewport
        self.viewport = Viewport(vp.image_w, vp.image_h, int(width), int(height), aspect=vp.aspect)
        self._notify("view", "frame", "boxes", "drag")

    # --- what to draw -------------------------------------------------------------------------------
    def boxes(self, n: int | None = None) -> list[BoxView]:
        """The boxes of frame ``n`` (default: current), hidden tracks and label layers left out, selected one last."""
        n = self.frame if n is None else n
        out = []
        for tid in sorted(self.case.tracks):
            t = self.case.tracks[tid]
            if tid in self.hidden or LABELS[t.label] in self.hidden_labels:
                continue
            v = t.value(n)
            if v is None:
                continue
            ex = t.excluded is not None
            out.append(BoxView(tid, tuple(float(c) for c in v[:4]), LABELS[t.label], SOURCES[v[4]], float(v[5]),
                               EXCLUDED_COLOR if ex else track_color(tid), ex, tid == self.selected,
                               t.is_key(n) and v[4] == ANALYST))
        out.sort(key=lambda b: b.selected)
        return out

    def mask_regions(self, n: int | None = None) -> Regions:
        """What the export masks in frame ``n`` (hidden tracks included: hiding is only a view), plus, while an
        analysis runs, what it has settled there."""
        n = self.frame if n is None else n
        own = self.case.regions_at(n)
        if self.provisional is None:
            return own
        return Regions.merge([own, self.provisional_at(n)])

    def picture(self) -> np.ndarray | None:
        """The canvas-sized picture of the current frame (masked when ``show_masked``)."""
        if self.source is None:
            return None
        img = self.source.view(self.frame, self.viewport)
        if self.show_masked and self.unsettled():
            h, w = img.shape[:2]
            return mask_frame(img, Regions(xyxy=[[0, 0, w, h]], label=[FACE]), self.case.settings)
        if self.show_masked:
            regions = self.mask_regions()
            if len(regions):
                vp = self.viewport
                ox, oy = vp.offset
                scaled = regions.replace(xyxy=regions.xyxy * np.array([vp.sx, vp.sy, vp.sx, vp.sy], np.float32)
                                         + np.array([ox, oy, ox, oy], np.float32))
                img = mask_frame(img, scaled, self.case.settings)
        return img

    def track_summaries(self) -> list[TrackSummary]:
        edited = self.case.edited_tracks()
        out = []
        for tid in sorted(self.case.tracks):
            t = self.case.tracks[tid]
            d = t.dense()
            if not len(d):
                continue
            best = int(np.argmax(d.area))
            out.append(TrackSummary(
                tid, LABELS[t.label], len(d), int(d.frame[0]), int(d.frame[-1]), float(d.score.min()), t.excluded,
                tid in self.hidden, tid in edited, EXCLUDED_COLOR if t.excluded else track_color(tid),
                int(d.frame[best]), tuple(float(c) for c in d.xyxy[best])))
        return out

    # --- hit testing --------------------------------------------------------------------------------
    def hit_handle(self, x: float, y: float) -> str | None:
        """The handle of the selected box under canvas ``(x, y)``, if any."""
        if self.selected is None or self.selected in self.hidden:
            return None
        v = self.case.tracks[self.selected].value(self.frame)
        if v is None:
            return None
        best, dist = None, HANDLE_PX
        for name, (hx, hy) in handle_points(self.viewport.box_to_canvas(v[:4])).items():
            d = max(abs(hx - x), abs(hy - y))
            if d <= dist:
                best, dist = name, d
        return best

    def hit_box(self, x: float, y: float) -> int | None:
        """The track whose box contains canvas ``(x, y)``: the selected one first, then the smallest."""
        ix, iy = self.viewport.to_image(x, y)
        inside = [b for b in self.boxes() if b.box[0] <= ix <= b.box[2] and b.box[1] <= iy <= b.box[3]]
        if not inside:
            return None
        for b in inside:
            if b.selected:
                return b.track
        return min(inside, key=lambda b: ((b.box[2] - b.box[0]) * (b.box[3] - b.box[1]), b.track)).track

    # --- pointer ------------------------------------------------------------------------------------
    def _clamp_point(self, ix: float, iy: float) -> tuple[float, float]:
        return min(max(ix, 0.0), float(self.viewport.image_w)), min(max(iy, 0.0), float(self.viewport.image_h))

    def on_down(self, x: float, y: float) -> None:
        """Pointer pressed at canvas ``(x, y)``: start a resize, a move or a new box."""
        handle = self.hit_handle(x, y)
        if handle is not None:
            box = self.case.tracks[self.selected].value(self.frame)[:4]
            self.drag = Drag("resize", (x, y), box, box, self.selected, handle)
        else:
            track = self.hit_box(x, y)
            if track is not None:
                self.select(track)
                box = self.case.tracks[track].value(self.frame)[:4]
                self.drag = Drag("move", (x, y), box, box, track)
            else:
                self.drag = Drag("draw", (x, y), None, None)
        self._notify("drag")

    def on_move(self, x: float, y: float) -> None:
        """Pointer moved (button held or not) to canvas ``(x, y)``."""
        d = self.drag
        if d is None:
            return
        if not d.moved and max(abs(x - d.start[0]), abs(y - d.start[1])) < DRAG_PX:
            return
        d.moved = True
        vp = self.viewport
        W, H = float(vp.image_w), float(vp.image_h)
        if d.kind == "draw":
            ax, ay = self._clamp_point(*vp.to_image(*d.start))
            bx, by = self._clamp_point(*vp.to_image(x, y))
            d.box = (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
        elif d.kind == "move":
            x1, y1, x2, y2 = d.box0
            dx, dy = (x - d.start[0]) / vp.sx, (y - d.start[1]) / vp.sy
            w, h = x2 - x1, y2 - y1
            nx = min(max(x1 + dx, min(0.0, x1)), max(W - w, x1))  # keep inside (or no further outside)
            ny = min(max(y1 + dy, min(0.0, y1)), max(H - h, y1))
            d.box = (nx, ny, nx + w, ny + h)
        else:  # resize
            x1, y1, x2, y2 = d.box0
            px, py = self._clamp_point(*vp.to_image(x, y))
            if "w" in d.handle:
                x1 = px
            if "e" in d.handle:
                x2 = px
            if "n" in d.handle:
                y1 = py
            if "s" in d.handle:
                y2 = py
            d.box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
        self._notify("drag")

    def on_up(self, x: float, y: float) -> None:
        """Pointer released: commit the drag as one edit (a click only selects or deselects)."""
        d = self.drag
        if d is None:
            return
        self.on_move(x, y)
        self.drag = None
        try:
            if d.kind == "draw":
                if d.moved and d.box is not None and min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= MIN_BOX:
                    self.select(tid := self.case.add_track(self.draw_label, {self.frame: d.box}))
                    # a photo has no frame to follow to: "f follows it forward" meant nothing there
                    self.say(f"new {self.draw_label} box {tid}" if self.n_frames == 1 else
                             f"new {self.draw_label} track {tid}, in this frame only: f follows it forward, F back")
                else:  # a click on the picture said nothing: say what it can do
                    self.select(None)
                    self.say(f"drag on the picture to draw a {self.draw_label} box; click a box to select it")
            elif d.moved and d.box is not None and d.box != d.box0:
                if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) < 1.0:
                    self.say("box too small; not changed")
                else:  # a careless drag from inside a face's box moved its mask off the face: like deleting
                    verb = "moved" if d.kind == "move" else "resized"
                    if self.case.tracks[d.track].uncovers(d.box0, d.box):
                        self._need_name(f"a box {verb} off part of what the analysis found")
                    self.case.set_keys(d.track, {self.frame: d.box}, tool=d.kind)
                    self.say(f"{verb} track {d.track}'s box in frame {self.frame}")
        except AnonlabError as exc:
            self.say(str(exc), error=True)
        self._notify("drag", "boxes")

    def on_out(self, x: float | None = None, y: float | None = None) -> None:
        """Pointer left the canvas at ``(x, y)``: a box being drawn ends at the picture's edge there (a drag past
        the edge to cover a face cut by it was dropped without a word); a move or resize is cancelled."""
        d = self.drag
        if d is not None and d.kind == "draw" and d.moved and x is not None and y is not None:
            self.on_up(x, y)  # on_move clamps the corner to the picture
        elif d is not None:
            self.drag = None
            self._notify("drag")

    def on_wheel(self, x: float, y: float, delta: float) -> None:
        self.zoom(1.25 if delta < 0 else 0.8, x, y)

    # --- keyboard -----------------------------------------------------------------------------------
    def on_key(self, key: str, *, ctrl: bool = False, shift: bool = False, alt: bool = False) -> str | None:
        """Handle a key (DOM ``KeyboardEvent.key`` names); returns the action's name, None if unbound.

        The bindings are the table `anonlab.widgets.keymap.KEYMAP` (the help is made from it too).
        ``"play"`` is returned for Space: playback is the view's job. An edit the case refuses is said in the
        tools' message and still returns its name; a view action that fails returns None.
        """
        binding = find_binding(key, ctrl=ctrl, shift=shift, alt=alt)
        if binding is None:
            return None
        try:
            if binding.selected:
                binding.run(self, self._need_selection())
            elif binding.run is not None:
                binding.run(self)
        except AnonlabError as exc:
            self.say(str(exc), error=True)
            return binding.action if binding.edit else None
        return binding.action

    def escape(self) -> None:
        """Cancel the drag in progress and clear the selection (the Escape key)."""
        self.drag = None
        self.select(None)
        self._notify("drag")

    def set_draw_label(self, label: str) -> None:
        """What a drag on empty canvas draws from now on (the 1 and 2 keys)."""
        self.draw_label = label
        self.say(f"drawing {self.draw_label}s")

    def cycle_selection(self, direction: int = 1) -> None:
        ids = [b.track for b in sorted(self.boxes(), key=lambda b: b.track)]
        if not ids:
            self.select(None)
            return
        if self.selected in ids:
            self.select(ids[(ids.index(self.selected) + direction) % len(ids)])
        else:
            self.select(ids[0] if direction > 0 else ids[-1])

    def _need_selection(self) -> int:
        if self.selected is None:
            raise AnonlabError("select a box first (click it, or Tab)")
        return self.selected

    # --- edits --------------------------------------------------------------------------------------
    def draw_box(self, box: Iterable[float], label: str | None = None, frame: int | None = None) -> int:
        """A new track with one keyframe (image coordinates); returns its id and selects it."""
        tid = self.case.add_track(label or self.draw_label, {self.frame if frame is None else frame: tuple(box)})
        self.select(tid)
        return tid

    def set_box(self, track: int, box: Iterable[float], frame: int | None = None, tool: str = "move") -> None:
        self.case.set_keys(track, {self.frame if frame is None else frame: tuple(box)}, tool=tool)

    def delete_region(self, track: int, frame: int | None = None) -> None:
        """Delete ``track``'s box in one frame (default: the current one)."""
        n = self.frame if frame is None else frame
        if self.case.tracks[track].value(n) is None if track in self.case.tracks else True:
            raise AnonlabError(f"track {track} has no box in frame {n}")
        self._need_name("deleting a box")
        self.case.delete_frames(track, n)
        self.say(f"deleted track {track}'s box in frame {n}")

    def delete_track(self, track: int) -> None:
        self._track(track)
        self._need_name("deleting a track")
        self.case.delete_track(track)
        self.say(f"deleted track {track}")

    def add_keyframe(self, track: int, frame: int | None = None) -> None:
        """Make frame ``n`` a keyframe of ``track`` (its current box, or the nearest one), ready to adjust."""
        n = self.frame if frame is None else frame
        t = self._track(track)
        v = t.value(n)
        if v is None:
            vis = [f for f, k in t.keys.items() if k is not None]
            nearest = min(vis, key=lambda f: (abs(f - n), f))
            v = t.keys[nearest]
        self.case.set_keys(track, {n: v[:4]}, tool="keyframe")
        self.say(f"keyframe of track {track} at frame {n}")

    def interpolate(self, track: int, start: int, stop: int) -> None:
        self._track(track)
        self.case.interpolate(track, start, stop)

    def merge(self, track: int, other: int) -> None:
        self._track(track)
        self._track(other)
        self.case.merge(track, other)
        self.select(track)
        self.say(f"merged track {other} into {track}")

    def split(self, track: int, frame: int | None = None) -> int:
        n = self.frame if frame is None else frame
        self._track(track)
        new = self.case.split(track, n)
        self.say(f"split track {track} at frame {n}: frames from here are track {new}")
        return new

    def exclude(self, track: int, reason: str) -> None:
        self._track(track)
        self.case.exclude(track, reason)
        self.say(f"track {track} will be left unmasked")

    def include(self, track: int) -> None:
        self._track(track)
        self.case.include(track)

    def relabel(self, track: int, label: str) -> None:
        self._track(track)
        self.case.relabel(track, label)

    def undo(self) -> dict | None:
        op = self.case.undo()
        self.say(f"undid {op['op']}" if op else "nothing to undo")
        return op

    def redo(self) -> dict | None:
        op = self.case.redo()
        self.say(f"redid {op['op']}" if op else "nothing to redo")
        return op

    def _track(self, track: int):
        if track not in self.case.tracks:
            raise AnonlabError(f"track {track} does not exist")
        return self.case.tracks[track]

    # --- follow -------------------------------------------------------------------------------------
    def follow(self, track: int, direction: int = 1, n_frames: int | None = None) -> int:
        """Propagate ``track``'s box in this frame forward (``direction`` 1) or backward (-1) with CSRT.

        Stops at the video's end, when the tracker loses the object or it leaves the frame, and before the
        track's next analyst keyframe (the analyst's own boxes are never overwritten). The result is one
        edit (undo removes it all); the boxes become keyframes (source ``tracker``) the analyst can correct.
        Returns the number of frames added.
        """
        if self.source is None:
            raise AnonlabError("follow needs the video's frames")
        n_frames = self.follow_frames if n_frames is None else int(n_frames)
        t = self._track(track)
        start = self.frame
        v = t.value(start)
        if v is None:
            raise AnonlabError(f"track {track} has no box in frame {start}; move to a frame where it has one")
        step = 1 if direction >= 0 else -1
        end = start + step * n_frames
        end = min(end, self.n_frames - 1) if step > 0 else max(end, 0)
        # never overwrite the analyst's keyframes
        for f in sorted(t.keys, reverse=step < 0):
            k = t.keys[f]
            if k is not None and k[4] == ANALYST and (f - start) * step > 0 and (f - end) * step <= 0:
                end = f - step
                break
        if (end - start) * step <= 0:
            self.say("nothing to follow: at the end of the video or next to a keyframe")
            return 0
        W, H = self.viewport.image_w, self.viewport.image_h
        lo, hi = (start, end + 1) if step > 0 else (end, start + 1)
        keys = csrt_follow(self.source.frames(lo, hi), start, v[:4], (W, H), step, max_side=FOLLOW_MAX_SIDE)
        if keys:
            self.case.set_keys(track, keys, source="tracker", tool="follow")
        self.say(f"followed track {track} over {len(keys)} frame(s) {'forward' if step > 0 else 'backward'}")
        return len(keys)
