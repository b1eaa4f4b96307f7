"""The workbench's editing model: plain Python, no ipywidgets, driven directly by the tests.

ipyannotations' pattern: the view (`anonlab.widgets.workbench`) only forwards pointer and key events to
`EditorModel.on_down/on_move/on_up(x, y)` and `on_key(key)` (canvas pixels), and redraws when the model
tells it what changed. Everything else lives here:

* the current frame, the selection, hidden tracks, the masked-preview switch, flagged frames;
* the `Viewport`: canvas <-> image coordinates (fit, letterbox, zoom about a point, pan);
* tools: press on empty canvas and drag = **draw** a new track; press on a box = select and **move**; press
  on a handle of the selected box = **resize**; Delete = delete the region in this frame (Shift: the whole
  track); ``k`` = keyframe; ``f``/``F`` = **follow** forward/backward with OpenCV's CSRT tracker; split,
  merge, exclude ("leave unmasked", with a reason), relabel, interpolate;
* undo/redo of every edit: the case's edit log (`anonlab.case.Case.undo`), one entry per edit;
* `FrameSource`: frames scaled to the canvas, cached, from a low-resolution proxy built in the background
  (random access at 1080p costs a seek plus a decode run of up to a GOP; the proxy costs a JPEG decode); the
  proxy lives in a private unlinked temporary file, so memory does not grow with the video's length;
* `AnalysisJob`: the analysis in a background thread, with progress, cancel, and the regions of the frames
  already settled (drawn, dashed, while it runs).

All edits go through the `Case`, which records them and autosaves; the model observes the case, so edits
made elsewhere (the review queue) refresh the view too.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.privacy import private_tempdir
from anonlab.regions import ANALYST, LABELS, SOURCES, Regions, RegionsLog

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
MAX_ZOOM = 16.0
#: JPEG size of a proxy frame at quality 80, bytes per pixel (measured: 55 kB for 960x540 video).
PROXY_BYTES_PER_PIXEL = 0.12

#: Track colours (CSS hex), picked by track id; excluded tracks are drawn grey and dashed.
PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
           "#bcf60c", "#fabebe", "#008080", "#e6beff")
EXCLUDED_COLOUR = "#9e9e9e"

#: Keyboard shortcuts, for the help text (the view shows it) and the tests.
SHORTCUTS = {
    "ArrowRight / ArrowLeft": "next / previous frame (Shift: 10 frames)",
    "Home / End": "first / last frame",
    "n / N": "next / previous flagged frame",
    "Space": "play / pause",
    "Tab": "select the next box in this frame",
    "Escape": "cancel the drag, clear the selection",
    "Delete / Backspace": "delete the selected box in this frame (Shift: the whole track)",
    "k": "keyframe the selected track here",
    "f / F": "follow the selected box forward / backward",
    "s": "split the selected track at this frame",
    "h": "hide / show the selected track",
    "m": "masked preview on / off",
    "1 / 2": "draw faces / plates",
    "+ / - / 0": "zoom in / out / fit",
    "Ctrl+Z / Ctrl+Y (Ctrl+Shift+Z)": "undo / redo",
}


def track_colour(track_id: int) -> str:
    return PALETTE[int(track_id) % len(PALETTE)]


def hex_to_bgr(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[4:6], 16), int(c[2:4], 16), int(c[0:2], 16)


# --- coordinates ----------------------------------------------------------------------------------------
@dataclass
class Viewport:
    """Maps image pixels to canvas pixels: fit inside the canvas (letterboxed), then zoom about a point.

    ``cx, cy`` is the image point shown at the canvas centre. At zoom 1 the whole image is visible and
    centred; when zoomed the centre is kept so that no more than the letterbox margin shows.

    Example:
        >>> vp = Viewport(1920, 1080, 960, 600)
        >>> vp.to_canvas(0, 0), vp.to_image(480, 300)
        ((0.0, 30.0), (960.0, 540.0))
    """

    image_w: int
    image_h: int
    canvas_w: int
    canvas_h: int
    zoom: float = 1.0
    cx: float = field(default=float("nan"))
    cy: float = field(default=float("nan"))

    def __post_init__(self) -> None:
        if min(self.image_w, self.image_h, self.canvas_w, self.canvas_h) <= 0:
            raise ValueError("viewport sizes must be positive")
        if math.isnan(self.cx) or math.isnan(self.cy):
            self.cx, self.cy = self.image_w / 2, self.image_h / 2
        self._clamp()

    @property
    def fit(self) -> float:
        return min(self.canvas_w / self.image_w, self.canvas_h / self.image_h)

    @property
    def scale(self) -> float:
        """Canvas pixels per image pixel."""
        return self.fit * self.zoom

    @property
    def offset(self) -> tuple[float, float]:
        """Canvas position of the image's origin."""
        s = self.scale
        return self.canvas_w / 2 - self.cx * s, self.canvas_h / 2 - self.cy * s

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        ox, oy = self.offset
        s = self.scale
        return (x - ox) / s, (y - oy) / s

    def to_canvas(self, ix: float, iy: float) -> tuple[float, float]:
        ox, oy = self.offset
        s = self.scale
        return ix * s + ox, iy * s + oy

    def box_to_canvas(self, box: Iterable[float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        return (*self.to_canvas(x1, y1), *self.to_canvas(x2, y2))

    def box_to_image(self, box: Iterable[float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        return (*self.to_image(x1, y1), *self.to_image(x2, y2))

    def affine(self) -> np.ndarray:
        """2x3 matrix image -> canvas (for ``cv2.warpAffine``)."""
        ox, oy = self.offset
        s = self.scale
        return np.array([[s, 0.0, ox], [0.0, s, oy]], np.float64)

    def _clamp(self) -> None:
        self.zoom = float(min(max(self.zoom, 1.0), MAX_ZOOM))
        s = self.scale
        for attr, size, canvas in (("cx", self.image_w, self.canvas_w), ("cy", self.image_h, self.canvas_h)):
            half = canvas / 2 / s  # half the visible extent, image px
            v = getattr(self, attr)
            setattr(self, attr, size / 2 if half >= size / 2 else min(max(v, half), size - half))

    def zoom_at(self, factor: float, x: float, y: float) -> None:
        """Zoom by ``factor`` keeping the image point under canvas ``(x, y)`` in place (where possible)."""
        ix, iy = self.to_image(x, y)
        self.zoom = float(min(max(self.zoom * factor, 1.0), MAX_ZOOM))
        s = self.scale
        self.cx = ix - (x - self.canvas_w / 2) / s
        self.cy = iy - (y - self.canvas_h / 2) / s
        self._clamp()

    def pan(self, dx: float, dy: float) -> None:
        """Move the picture by ``dx, dy`` canvas pixels."""
        self.cx -= dx / self.scale
        self.cy -= dy / self.scale
        self._clamp()

    def reset(self) -> None:
        self.zoom, self.cx, self.cy = 1.0, self.image_w / 2, self.image_h / 2

    def image_rect(self) -> tuple[int, int, int, int]:
        """Where the whole image lands on the canvas at this zoom (rounded): x, y, w, h."""
        ox, oy = self.offset
        return round(ox), round(oy), max(1, round(self.image_w * self.scale)), max(1, round(self.image_h * self.scale))


def render_view(frame: np.ndarray, vp: Viewport) -> np.ndarray:
    """The canvas-sized picture of ``frame`` (BGR) through ``vp``; black letterbox."""
    h, w = frame.shape[:2]
    out = np.zeros((vp.canvas_h, vp.canvas_w, 3), np.uint8)
    if vp.zoom == 1.0:
        x, y, rw, rh = vp.image_rect()
        small = frame if (rw, rh) == (w, h) else cv2.resize(
            frame, (rw, rh), interpolation=cv2.INTER_AREA if rw < w else cv2.INTER_LINEAR)
        _paste(out, small, x, y)
        return out
    m = vp.affine()
    if (w, h) != (vp.image_w, vp.image_h):  # a smaller copy: its pixels are bigger than the image's
        m[0, 0] *= vp.image_w / w
        m[1, 1] *= vp.image_h / h
    cv2.warpAffine(frame, m, (vp.canvas_w, vp.canvas_h), dst=out, flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return out


def _paste(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    H, W = dst.shape[:2]
    h, w = src.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        dst[y0:y1, x0:x1] = src[y0 - y : y1 - y, x0 - x : x1 - x]


# --- frames ---------------------------------------------------------------------------------------------
class FrameSource:
    """Frames for the canvas: exact full frames on demand, canvas-sized pictures cached (LRU by bytes),
    and an optional low-resolution JPEG proxy decoded once in a background thread.

    Memory is bounded by frame size, never by duration (issue 13): the proxy's JPEGs go to a private
    temporary file (made in `anonlab.privacy.private_tempdir`, mode 0600 in a 0700 folder, and unlinked at
    once, so no other user can open it and nothing is left on disk even if the kernel is killed); memory
    holds only the LRU of canvas pictures (``cache_mb``) and the file's index (16 bytes a frame). An LRU in
    memory instead would keep only the frames last built or seen, so scrubbing back over an hour of footage
    would fall back to exact decodes (a seek plus up to a GOP each); on disk the whole video stays smooth.
    The proxy stops at ``proxy_mb`` of disk, a long video getting smaller proxy frames (down to a third of the
    canvas) so that all of it fits. ``stats`` counts hits for the benchmarks.
    """

    def __init__(self, path_or_reader, *, cache_mb: int = 128) -> None:
        from anonlab.media import open_media

        if isinstance(path_or_reader, (str, Path)):
            self.path: Path | None = Path(path_or_reader)
            self.reader = open_media(self.path)
        else:
            self.reader = path_or_reader
            self.path = Path(getattr(path_or_reader, "path", "")) or None
        self.n_frames = int(self.reader.n_frames)
        self.width, self.height = int(self.reader.width), int(self.reader.height)
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = cache_mb << 20
        self._proxy_fd: int | None = None
        #: Byte offset and length of each frame's JPEG in the proxy file (length 0: not there yet).
        self._proxy_at = np.zeros(self.n_frames, np.int64)
        self._proxy_len = np.zeros(self.n_frames, np.int64)
        self._proxy_size: tuple[int, int] | None = None
        self._proxy_thread: threading.Thread | None = None
        self._proxy_stop = threading.Event()
        self._lock = threading.Lock()  # the UI thread and the proxy builder share the decoder-free parts only
        self.proxy_done = 0
        self.proxy_bytes = 0
        self.stats = {"cache": 0, "proxy": 0, "decode": 0}

    @property
    def times(self) -> np.ndarray:
        return np.asarray(self.reader.times, np.float64)

    def full(self, n: int) -> np.ndarray:
        """Frame ``n`` exactly, full resolution (BGR)."""
        return self.reader.get(int(n))

    def frames(self, start: int, stop: int):
        """``(n, frame)`` for ``start <= n < stop``, decoded in order (for follow)."""
        return self.reader.frames(start, stop)

    def memory_bytes(self) -> int:
        """Bytes this source keeps in memory: cached pictures and the proxy index (not the decoder's)."""
        return self._cache_bytes + self._proxy_at.nbytes + self._proxy_len.nbytes

    def proxy_jpeg(self, n: int) -> bytes | None:
        """Frame ``n``'s proxy JPEG, or None when it is not built (yet)."""
        n = int(n)
        if self._proxy_fd is None or not 0 <= n < self.n_frames:
            return None
        length = int(self._proxy_len[n])  # written last by the builder: non-zero means the bytes are there
        if not length:
            return None
        try:
            return os.pread(self._proxy_fd, length, int(self._proxy_at[n]))
        except OSError:
            return None

    def view(self, n: int, vp: Viewport) -> np.ndarray:
        """Frame ``n`` as the canvas shows it through ``vp`` (do not modify the result)."""
        if vp.zoom != 1.0:
            self.stats["decode"] += 1
            return render_view(self.full(n), vp)
        key = (int(n), vp.canvas_w, vp.canvas_h)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.stats["cache"] += 1
            return hit
        rect = vp.image_rect()
        data = self.proxy_jpeg(n)
        if data is not None:
            small = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if (small.shape[1], small.shape[0]) != rect[2:]:  # a long video's proxy is smaller than the canvas
                small = cv2.resize(small, rect[2:], interpolation=cv2.INTER_LINEAR)
            out = np.zeros((vp.canvas_h, vp.canvas_w, 3), np.uint8)
            _paste(out, small, rect[0], rect[1])
            self.stats["proxy"] += 1
        else:
            out = render_view(self.full(n), vp)
            self.stats["decode"] += 1
        self._remember(key, out)
        return out

    def _remember(self, key, img: np.ndarray) -> None:
        self._cache[key] = img
        self._cache_bytes += img.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes

    def start_proxy(self, size: tuple[int, int], *, quality: int = 80, proxy_mb: int = 8192,
                    background: bool = True) -> None:
        """Decode every frame once into JPEGs of ``size`` (w, h), in a thread unless ``background`` is False.

        The JPEGs go to a private unlinked temporary file (see the class). A long video gets a smaller proxy
        (down to a third of ``size``) so that all of it fits in ``proxy_mb`` (at most a quarter of the free
        space of the temporary folder); frames beyond it are decoded exactly.
        """
        import shutil
        import tempfile

        if self.path is None or self.n_frames <= 1 or self._proxy_thread is not None:
            return
        with private_tempdir("proxy") as folder:
            fd, name = tempfile.mkstemp(dir=folder, suffix=".bin")  # 0600 in a 0700 folder
            os.unlink(name)  # only this descriptor reaches the data now; the kernel frees it at exit, even a kill
            budget = min(proxy_mb << 20, shutil.disk_usage(folder).free // 4)
        self._proxy_fd = fd
        per_frame = size[0] * size[1] * PROXY_BYTES_PER_PIXEL
        shrink = min(1.0, max(1 / 3, math.sqrt(budget / max(self.n_frames * per_frame, 1))))
        self._proxy_size = (max(16, round(size[0] * shrink)), max(16, round(size[1] * shrink)))
        if background:
            self._proxy_thread = threading.Thread(target=self._build_proxy, args=(quality, budget),
                                                  name="anonlab-proxy", daemon=True)
            self._proxy_thread.start()
        else:
            self._build_proxy(quality, budget)

    def _build_proxy(self, quality: int, budget: int) -> None:
        from anonlab.media import open_media

        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        try:
            reader = open_media(self.path)  # its own decoder: the UI keeps using self.reader
        except AnonlabError:
            return
        try:
            at = 0
            for n, frame in reader.frames():
                if self._proxy_stop.is_set():
                    break
                small = cv2.resize(frame, self._proxy_size, interpolation=cv2.INTER_AREA)
                ok, buf = cv2.imencode(".jpg", small, params)
                if ok and 0 <= n < self.n_frames:
                    data = buf.tobytes()
                    if at and at + len(data) > budget:  # the first frame always: a proxy of at least one
                        break
                    os.pwrite(self._proxy_fd, data, at)
                    self._proxy_at[n] = at
                    self._proxy_len[n] = len(data)  # last: a reader sees the frame only once it is complete
                    at += len(data)
                    self.proxy_bytes = at
                self.proxy_done = n + 1
        except OSError:
            return  # disk full or closed: the rest is decoded exactly
        finally:
            reader.close()

    def proxy_ready(self) -> bool:
        """True once the proxy is built (or none is being built)."""
        return self._proxy_thread is None or not self._proxy_thread.is_alive()

    def wait_proxy(self, timeout: float | None = None) -> None:
        if self._proxy_thread is not None:
            self._proxy_thread.join(timeout)

    def clear(self) -> None:
        self._cache.clear()
        self._cache_bytes = 0

    def close(self) -> None:
        self._proxy_stop.set()
        if self._proxy_thread is not None:
            self._proxy_thread.join(5)
        self._proxy_len[:] = 0
        if self._proxy_fd is not None:
            os.close(self._proxy_fd)
            self._proxy_fd = None
        self.clear()
        self.reader.close()


# --- what the view draws --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxView:
    """One box on the canvas: image coordinates plus how to draw it."""

    track: int
    box: tuple[float, float, float, float]
    label: str
    source: str
    score: float
    colour: str
    excluded: bool
    selected: bool
    keyframe: bool


@dataclass(frozen=True)
class TrackSummary:
    """One row of the track list (no pixels: the view crops the thumbnail from ``thumb_frame``)."""

    id: int
    label: str
    n_frames: int
    first: int
    last: int
    min_score: float
    excluded: str | None
    hidden: bool
    edited: bool
    colour: str
    thumb_frame: int
    thumb_box: tuple[float, float, float, float]


@dataclass
class Drag:
    kind: str  # "draw" | "move" | "resize"
    start: tuple[float, float]  # canvas
    box0: tuple[float, float, float, float] | None  # image, the box before the drag
    box: tuple[float, float, float, float] | None  # image, the preview
    track: int | None = None
    handle: str | None = None
    moved: bool = False


HANDLES = ("nw", "n", "ne", "e", "se", "s", "sw", "w")


def handle_points(box: tuple[float, float, float, float]) -> dict[str, tuple[float, float]]:
    """Canvas (or image) positions of the 8 resize handles of ``box``."""
    x1, y1, x2, y2 = box
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    return {"nw": (x1, y1), "n": (mx, y1), "ne": (x2, y1), "e": (x2, my), "se": (x2, y2), "s": (mx, y2),
            "sw": (x1, y2), "w": (x1, my)}


# --- the model ------------------------------------------------------------------------------------------
class EditorModel:
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
        self.viewport = Viewport(info.width, info.height, int(canvas_size[0]), int(canvas_size[1]))
        if frames is not None and len(getattr(frames, "times", [])) == self.n_frames:
            self.times = frames.times
        else:
            self.times = np.arange(self.n_frames) / (info.fps or 25.0)
        self.frame = 0
        self.selected: int | None = None
        self.hidden: set[int] = set()
        #: The masked preview is on by default: the analyst first sees what will be published (issue 14).
        self.show_masked = True
        self.draw_label = "face"
        self.drag: Drag | None = None
        self.message = ""
        #: The last message of each group of controls (``tools``, ``player``, ``status``, ``review``): the view
        #: shows each next to its controls; an action's success replaces its group's old error.
        self.messages: dict[str, str] = {}
        #: The groups whose last message is an error.
        self.failed: set[str] = set()
        #: While an analysis runs: the regions of the frames already settled (`AnalysisJob`), drawn dashed.
        self.provisional: Regions | None = None
        #: Frames the review queue wants looked at (issue 7 sets it); ``n``/``N`` and the view's buttons jump.
        self.flagged_frames: list[int] = []
        self.follow_frames = FOLLOW_FRAMES
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
        self._notify("boxes", "tracks", "selection", "case")

    def say(self, message: str, where: str = "tools", *, error: bool = False) -> None:
        """Show ``message`` next to the ``where`` group of controls (it replaces that group's last one, so an
        old error goes once the next action there succeeds); ``error`` marks it as one (`failed`)."""
        self.message = message
        self.messages[where] = message
        (self.failed.add if error else self.failed.discard)(where)
        self._notify("message")

    def set_provisional(self, regions: Regions | None) -> None:
        """The settled part of a running analysis (None when it ends)."""
        self.provisional = regions
        self._notify("boxes", "frame")

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
            self._notify("frame", "boxes", "drag")
        return self.frame

    def step(self, k: int) -> int:
        return self.seek(self.frame + k)

    @property
    def time(self) -> float:
        return float(self.times[self.frame])

    def set_flagged(self, frames: Iterable[int]) -> None:
        self.flagged_frames = sorted({int(f) for f in frames if 0 <= int(f) < self.n_frames})
        self._notify("flags")

    def next_flagged(self) -> int | None:
        later = [f for f in self.flagged_frames if f > self.frame]
        if later:
            self.say("", "player")
            self.seek(later[0])
            return later[0]
        self.say("no flagged frame after this one", "player", error=True)
        return None

    def prev_flagged(self) -> int | None:
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
            self._notify("selection", "boxes")

    def toggle_hidden(self, track: int) -> None:
        self.hidden ^= {int(track)}
        if track in self.hidden and self.selected == track:
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
        self.viewport = Viewport(vp.image_w, vp.image_h, int(width), int(height))
        self._notify("view", "frame", "boxes", "drag")

    # --- what to draw -------------------------------------------------------------------------------
    def boxes(self, n: int | None = None) -> list[BoxView]:
        """The boxes of frame ``n`` (default: current), hidden tracks left out, selected one last."""
        n = self.frame if n is None else n
        out = []
        for tid in sorted(self.case.tracks):
            if tid in self.hidden:
                continue
            t = self.case.tracks[tid]
            v = t.value(n)
            if v is None:
                continue
            ex = t.excluded is not None
            out.append(BoxView(tid, tuple(float(c) for c in v[:4]), LABELS[t.label], SOURCES[v[4]], float(v[5]),
                               EXCLUDED_COLOUR if ex else track_colour(tid), ex, tid == self.selected,
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
        if self.show_masked:
            from anonlab.render.mask import mask_frame

            regions = self.mask_regions()
            if len(regions):
                vp = self.viewport
                ox, oy = vp.offset
                scaled = regions.replace(xyxy=regions.xyxy * vp.scale + np.array([ox, oy, ox, oy], np.float32))
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
                tid in self.hidden, tid in edited, EXCLUDED_COLOUR if t.excluded else track_colour(tid),
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
            dx, dy = (x - d.start[0]) / vp.scale, (y - d.start[1]) / vp.scale
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
                    tid = self.case.add_track(self.draw_label, {self.frame: d.box})
                    self.select(tid)
                    self.say(f"new {self.draw_label} track {tid}")
                else:
                    self.select(None)
            elif d.moved and d.box is not None and d.box != d.box0:
                w, h = d.box[2] - d.box[0], d.box[3] - d.box[1]
                if min(w, h) < 1.0:
                    self.say("box too small; not changed")
                else:
                    self.case.set_keys(d.track, {self.frame: d.box}, tool=d.kind)
                    self.say(f"{'moved' if d.kind == 'move' else 'resized'} track {d.track}'s box in frame "
                             f"{self.frame}")
        except AnonlabError as exc:
            self.say(str(exc), error=True)
        self._notify("drag", "boxes")

    def on_out(self) -> None:
        """Pointer left the canvas: a drag in progress is cancelled."""
        if self.drag is not None:
            self.drag = None
            self._notify("drag")

    def on_wheel(self, x: float, y: float, delta: float) -> None:
        self.zoom(1.25 if delta < 0 else 0.8, x, y)

    # --- keyboard -----------------------------------------------------------------------------------
    def on_key(self, key: str, *, ctrl: bool = False, shift: bool = False, alt: bool = False) -> str | None:
        """Handle a key (DOM ``KeyboardEvent.key`` names); returns the action's name, None if unbound.

        ``"play"`` is returned for Space: playback is the view's job.
        """
        if len(key) == 1 and key.isalpha() and key.isupper():
            shift, key = True, key.lower()
        action = None
        try:
            if ctrl and key == "z":
                action = "redo" if shift else "undo"
            elif ctrl and key == "y":
                action = "redo"
            elif ctrl or alt:
                return None
            elif key in ("ArrowRight", "ArrowLeft"):
                self.step((10 if shift else 1) * (1 if key == "ArrowRight" else -1))
                return "step"
            elif key == "Home":
                self.seek(0)
                return "seek"
            elif key == "End":
                self.seek(self.n_frames - 1)
                return "seek"
            elif key == "n":
                self.prev_flagged() if shift else self.next_flagged()
                return "flagged"
            elif key == " ":
                return "play"
            elif key == "Escape":
                self.drag = None
                self.select(None)
                self._notify("drag")
                return "escape"
            elif key == "Tab":
                self.cycle_selection(-1 if shift else 1)
                return "cycle"
            elif key in ("Delete", "Backspace"):
                action = "delete_track" if shift else "delete_region"
            elif key == "k":
                action = "keyframe"
            elif key == "f":
                action = "follow_back" if shift else "follow"
            elif key == "s":
                action = "split"
            elif key == "h":
                if self.selected is not None:
                    self.toggle_hidden(self.selected)
                return "hide"
            elif key == "m":
                self.toggle_masked()
                return "masked"
            elif key in ("1", "2"):
                self.draw_label = LABELS[int(key) - 1]
                self.say(f"drawing {self.draw_label}s")
                return "label"
            elif key in ("+", "="):
                self.zoom(1.25)
                return "zoom"
            elif key == "-":
                self.zoom(0.8)
                return "zoom"
            elif key == "0":
                self.reset_zoom()
                return "zoom"
            else:
                return None
            if action == "undo":
                self.undo()
            elif action == "redo":
                self.redo()
            elif action in ("delete_region", "delete_track", "keyframe", "follow", "follow_back", "split"):
                t = self._need_selection()
                if action == "delete_region":
                    self.delete_region(t)
                elif action == "delete_track":
                    self.delete_track(t)
                elif action == "keyframe":
                    self.add_keyframe(t)
                elif action == "split":
                    self.split(t)
                else:
                    self.follow(t, -1 if action == "follow_back" else 1)
        except AnonlabError as exc:
            self.say(str(exc), error=True)
        return action

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
        box = v[:4]
        scale = min(1.0, FOLLOW_MAX_SIDE / max(W, H))
        if min(box[2] - box[0], box[3] - box[1]) * scale < 24:
            scale = 1.0
        lo, hi = (start, end + 1) if step > 0 else (end, start + 1)

        def small(img):
            return img if scale == 1.0 else cv2.resize(img, (round(W * scale), round(H * scale)),
                                                      interpolation=cv2.INTER_AREA)

        frames = ((n, small(f)) for n, f in self.source.frames(lo, hi))
        if step < 0:
            frames = iter(list(frames)[::-1])
        keys: dict[int, tuple] = {}
        tracker = None
        for n, img in frames:
            if tracker is None:
                if n != start:
                    raise AnonlabError("follow: the video did not yield the expected frame")
                tracker = cv2.TrackerCSRT_create()
                x1, y1, x2, y2 = (c * scale for c in box)
                tracker.init(img, (int(round(x1)), int(round(y1)), max(2, int(round(x2 - x1))),
                                   max(2, int(round(y2 - y1)))))
                continue
            ok, (bx, by, bw, bh) = tracker.update(img)
            if not ok or bw <= 0 or bh <= 0:
                break
            nb = (bx / scale, by / scale, (bx + bw) / scale, (by + bh) / scale)
            cb = (max(nb[0], 0), max(nb[1], 0), min(nb[2], W), min(nb[3], H))
            area = (nb[2] - nb[0]) * (nb[3] - nb[1])
            if cb[2] <= cb[0] or cb[3] <= cb[1] or (cb[2] - cb[0]) * (cb[3] - cb[1]) < 0.3 * area:
                break  # left the picture
            keys[n] = cb
        if keys:
            self.case.set_keys(track, keys, source="tracker", tool="follow")
        self.say(f"followed track {track} over {len(keys)} frame(s) {'forward' if step > 0 else 'backward'}")
        return len(keys)


# --- analysis in the background -------------------------------------------------------------------------
class Cancelled(AnonlabError):
    """The analyst cancelled the analysis."""


class AnalysisJob:
    """`anonlab.pipeline.analyse` in a background thread: progress, cancel, and the settled part as it grows.

    The page stays usable while it runs (issue 14 item 18): the analyst scrubs, and the frames the analysis
    has settled already show their regions (`settled_regions`, from `anonlab.track.analyse.Analyser.settled`,
    so they are final). ``on_progress(done, total)`` and ``on_done(job)`` are called from the worker thread;
    the view hands them to the kernel's event loop.

    Args:
        path: the video or photo.
        settings: analysis settings.
        analyse: the analysis function (default `anonlab.pipeline.analyse`; tests pass a fake).
        every: frames between two progress reports and two looks at the settled frames.
    """

    def __init__(self, path, settings, *, analyse: Callable | None = None, every: int = 10,
                 on_progress: Callable[[int, int], None] | None = None,
                 on_done: Callable[["AnalysisJob"], None] | None = None) -> None:
        self.path, self.settings = path, settings
        self._analyse = analyse
        self.every = max(1, int(every))
        self.on_progress, self.on_done = on_progress, on_done
        self.state = "new"  # new, running, done, cancelled, failed
        self.done_frames = 0
        self.total = 0
        self.result = None
        self.error: BaseException | None = None
        self._parts = RegionsLog(block=64)  # settled rows, a run of frames at a time
        self._settled = 0
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, background: bool = True) -> "AnalysisJob":
        self.state = "running"
        if background:
            self._thread = threading.Thread(target=self._run, name="anonlab-analysis", daemon=True)
            self._thread.start()
        else:
            self._run()
        return self

    def cancel(self) -> None:
        """Stop at the next frame; the case keeps what it had."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self.state == "running"

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

    def _run(self) -> None:
        try:
            fn = self._analyse
            if fn is None:
                from anonlab.pipeline import analyse as fn
            self.result = fn(self.path, self.settings, progress=False, on_frame=self._on_frame)
            self.state = "done"
        except Cancelled as exc:
            self.state, self.error = "cancelled", exc
        except BaseException as exc:  # reported to the analyst by the view, never lost in the thread
            self.state, self.error = "failed", exc
        if self.on_done is not None:
            self.on_done(self)


class BackgroundJob:
    """``fn()`` in a background thread (the red-team check of an export): state, result or error, ``on_done``.

    ``on_done(job)`` is called from the worker thread; the view hands it to the kernel's event loop.
    """

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
            self._thread = threading.Thread(target=self._run, name="anonlab-job", daemon=True)
            self._thread.start()
        else:
            self._run()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.result = self.fn()
            self.state = "done"
        except BaseException as exc:  # reported by the view
            self.state, self.error = "failed", exc
        if self.on_done is not None:
            self.on_done(self)
