"""The workbench view: ipywidgets + ipycanvas + ipyevents around an `EditorModel`.

Thin on purpose: every handler here converts a widget event into one model call, and every redraw reads
the model. The tests instantiate `Workbench` without a browser and call the handlers (``_on_mouse_down``,
``_on_key_event``, buttons' ``click()``), then check ``drawn`` (what the last redraw put on each layer).

Layout (made for a 1366×768 laptop screen, about 1366×650 of page)::

    status strip: file · size · frames · tracks · status · case       analyst [name] [analyse] [cancel] ▮▮▮
                  output [path] [overwrite] [export]   message of analyse / export (cleared on success)
    picture (fit, masked preview on)            | REVIEW card: reason, filmstrip, accept / fixed / dismiss
    slider; sound-track strip (waveform, ranges)| TRACK tools: label, key, split, delete, follow, merge, unmask
    play, steps, flags, frame                   | sign-off, override, residual risk (folded)
    message of the player                       | AUDIO: mode, in / out / add / remove range, message
    track list (scrolls), keyboard help, counts for the record

Frames reach the browser as JPEG: ``put_image_data`` (ipycanvas encodes a 3-channel array as JPEG) of the
canvas-sized picture, or, with ``send="image"``, an ``ipywidgets.Image`` holding a JPEG drawn with
``draw_image``. Pictures come from `FrameSource` (cache, then proxy, then an exact decode). The picture is
drawn again when a browser view of the canvas becomes ready (Voilà renders the page after the kernel
drew the first frame, which was lost).

This module builds the page and wires events to the model; the parts with a job of their own are beside
it: the sizes and CSS (`anonlab.widgets.layout`), drawing on the canvas layers and thumbnails
(`anonlab.widgets.drawing`), the long actions that run in threads or write files (`anonlab.widgets.actions`,
a mixin of `Workbench`), and opening a case (`anonlab.widgets.inputs`).
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Callable

import cv2
import ipywidgets as widgets
import numpy as np
from ipycanvas import MultiCanvas

from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.pipeline import default_output
from anonlab.regions import LABELS
from anonlab.settings import Settings
from anonlab.widgets.actions import LongActions, speed_dropdown
from anonlab.widgets.drawing import Thumbnails, draw_boxes, draw_drag
from anonlab.widgets.editor import EditorModel
from anonlab.widgets.folder import FolderWorkbench
from anonlab.widgets.frames import FrameSource
from anonlab.widgets.inputs import open_case
from anonlab.widgets.jobs import AnalysisJob, BackgroundJob
from anonlab.widgets.keymap import SHORTCUTS
from anonlab.widgets.layout import (CSS, GAP, MAX_CANVAS, MAX_TRACK_ROWS, ROW_PX, SIDE_WIDTH, THUMB, canvas_size_for,
                                    earlier_export_html, fmt_time, layout_width, msg_html, player_width)
from anonlab.widgets.review_panel import ReviewPanel
from anonlab.widgets.soundtrack_panel import SoundTrackPanel


class Workbench(LongActions, SoundTrackPanel):
    """Open a video or photo (or a case file, or a `Case`, or a folder of photos) for review and editing.

    Args:
        path_or_case: media file, ``*.case.json``, or a `Case`. For a media file the case file beside it
            (``NAME.case.json``) is loaded when it exists, else a new case is started there. A folder of
            photos gives a `anonlab.widgets.folder.FolderWorkbench`.
        settings: settings for a new case's analysis (a loaded case keeps its own).
        case_path: where the case is saved (default beside the input).
        autosave: save the case after every change.
        proxy: build the low-resolution proxy in the background for smooth scrubbing.
        send: ``"put"`` (``put_image_data``) or ``"image"`` (an ``ipywidgets.Image`` JPEG + ``draw_image``).
        output: default export path (default ``NAME_anonymized.EXT`` beside the input).
        canvas_box: the picture fits in this ``(width, height)``, pixels.
        analyst: the analyst's name (recorded with every edit and decision); else typed in the page.

    Display it as the last expression of a cell, or ``display(wb)``; ``wb.record`` is a live summary
    (counts, no coordinates) for a second cell.
    """

    def __new__(cls, path_or_case=None, *args, **kwargs):
        # A folder of photos opens as a chooser over one workbench per photo.
        if isinstance(path_or_case, (str, Path)) and Path(path_or_case).is_dir():
            return FolderWorkbench(path_or_case, *args, open_photo=Workbench, **kwargs)
        return super().__new__(cls)

    def __init__(self, path_or_case, settings: Settings | None = None, *, case_path: str | Path | None = None,
                 autosave: bool = True, proxy: bool = True, send: str = "put", output: str | Path | None = None,
                 canvas_box: tuple[int, int] = MAX_CANVAS, analyst: str | None = None) -> None:
        self.case = open_case(path_or_case, settings, case_path)
        self.case.autosave = autosave and self.case.path is not None
        self.input_path = self.case.locate_input()
        self.frames = FrameSource(self.input_path)
        info = self.case.input
        self.is_photo = info.kind == "photo" or info.n_frames <= 1
        # the canvas has the picture's displayed shape: anamorphic pixels are wider (or taller) than square
        shown_w = max(1, round(info.width * self.frames.pixel_aspect))
        self.model = EditorModel(self.case, self.frames, canvas_size_for(shown_w, info.height, canvas_box))
        self.send = send
        self.export_gate: Callable[[Case], None] | None = None
        self.drawn: dict = {}
        self.timings: dict[str, list[float]] = {"picture_ms": [], "send_ms": []}
        self.job: AnalysisJob | None = None
        self.red_team_job: BackgroundJob | None = None
        self.last_export: dict | None = None
        self.last_output: Path | None = None
        self._loop, self._syncing = None, False
        self._pending: list[Callable[[], None]] = []
        self._rows: dict[int, tuple] = {}
        self._thumbs = Thumbnails(self.case, self.frames, self.model)
        reader_info = getattr(self.frames.reader, "info", None)
        #: The sound-track strip and the AUDIO box (videos with a sound track): `_start_waveform`.
        self.has_audio = not self.is_photo and bool(getattr(reader_info, "has_audio", False))
        self._peaks: np.ndarray | None = None
        self.waveform_thread: threading.Thread | None = None
        self._build(output, analyst)
        self.model.observe(self._on_model)
        # The review queue steps the player through what needs a look and gates the export.
        self.review = ReviewPanel(self)
        self.side.children = (self.review.card, self.tools, self.review.signoff_box)
        self.export_gate = self.review.session.gate
        if self.has_audio:
            self.add_panel(self.audio_box)
            self._start_waveform()
        self._redraw({"frame", "boxes", "drag", "tracks", "selection", "message", "case"})
        if proxy and not self.is_photo:
            self.frames.start_proxy(self.model.viewport.image_rect()[2:])
            # Until the proxy is there a random frame costs a seek and a GOP of decoding: update on release
            # only, so a drag of the slider does not queue dozens of slow decodes.
            self.slider.continuous_update = False

    @property
    def flagged_frames(self) -> list[int]:
        """Frames the review queue flags; the ⚑ buttons and ``n``/``N`` jump between them."""
        return self.model.flagged_frames

    @flagged_frames.setter
    def flagged_frames(self, frames) -> None:
        self.model.set_flagged(frames)

    # --- layout -----------------------------------------------------------------------------------
    def _button(self, desc: str, tip: str, fn: Callable, icon: str = "", width: str = "auto", where: str = "tools",
                style: str = "") -> widgets.Button:
        b = widgets.Button(description=desc, tooltip=tip or desc, icon=icon, button_style=style,
                           layout=widgets.Layout(width=width))
        b.on_click(lambda _b: self._guard(fn, where))
        return b

    def _build(self, output, analyst) -> None:
        m, info = self.model, self.case.input
        L = widgets.Layout
        cw, ch = m.viewport.canvas_w, m.viewport.canvas_h
        self.canvas = MultiCanvas(3, width=cw, height=ch)
        self.canvas.layout = L(width=f"{cw}px", height=f"{ch}px")
        self.image_layer, self.region_layer, self.ui_layer = self.canvas[0], self.canvas[1], self.canvas[2]
        self.canvas.on_mouse_down(self._on_mouse_down)
        self.canvas.on_mouse_move(self._on_mouse_move)
        self.canvas.on_mouse_up(self._on_mouse_up)
        self.canvas.on_mouse_out(self._on_mouse_out)
        self.canvas.on_client_ready(self._on_client_ready)
        self._jpeg_widget = widgets.Image(format="jpeg")
        try:
            from ipyevents import Event

            self.events = Event(source=self.canvas, watched_events=["keydown"], prevent_default_action=True)
            self.events.on_dom_event(self._on_key_event)
        except ImportError:  # pragma: no cover - ipyevents is in the jupyter extra
            self.events = None

        # --- status strip: what is open, who works, analyse, export; their messages beside them
        self.status = widgets.HTML(layout=L(width="100%"))
        self.analyst = widgets.Text(analyst or "", placeholder="your name", description="analyst",
                                    tooltip="recorded with every decision that leaves something visible",
                                    layout=L(width="230px"), style={"description_width": "52px"})
        self.analyst.observe(lambda ch: (self.sync_actor(), self.actor_name() and self.model.name_typed()), "value")
        self.analyse_button = self._button("analyse", "detect and track faces and plates (in the background)",
                                           self.analyse, "search", where="status", style="primary")
        self.speed = speed_dropdown(self.case.settings)  # the analysis' speed profile, its figures as the tooltip
        self.cancel_button = self._button("cancel", "stop the analysis; the case keeps what it had", self.cancel,
                                          "stop", where="status")
        self.cancel_button.layout.display = "none"
        self.progress_bar = widgets.IntProgress(0, 0, 1, layout=L(width="140px", display="none"))
        self.export_path = widgets.Text(str(output or default_output(self.input_path)), placeholder="output file",
                                        description="output", layout=L(width="360px"),
                                        style={"description_width": "48px"})
        self.overwrite = widgets.Checkbox(False, description="replace", indent=False,
                                          tooltip="replace the output file if it exists", layout=L(width="76px"))
        self.export_button = self._button("export", "render the masked output (after the review)", self.export,
                                          "download", where="status")
        self.status_msg = widgets.HTML(layout=L(width="100%", min_height="22px"))
        self.status_msg.add_class("anonlab-msg")
        self.progress = widgets.Output(layout=L(min_height="0px"))
        strip = widgets.VBox([widgets.HBox([self.status]), widgets.HBox(
            [self.analyst, self.speed, self.analyse_button, self.cancel_button, self.progress_bar, self.export_path,
             self.overwrite, self.export_button], layout=L(flex_flow="row wrap")), self.status_msg],
            layout=L(width="100%"))

        # --- player
        last = max(info.n_frames - 1, 0)
        self.slider = widgets.IntSlider(0, 0, last, 1, continuous_update=True, readout=False,
                                        tooltip="frame", layout=L(width=f"{cw}px", margin="0"))
        self.slider.observe(self._on_slider, "value")
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=max(int(1000 / (info.fps or 25)), 20),
                                 description="play", tooltip="play / pause (Space)", show_repeat=False,
                                 layout=L(width="auto"))
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.frame_label = widgets.HTML()
        self.step_buttons = [self._button(d, f"step {k:+d} frame(s) (arrow keys; Shift: 10)",
                                          (lambda k=k: m.step(k)), width="46px", where="player")
                             for d, k in (("-10", -10), ("-1", -1), ("+1", 1), ("+10", 10))]
        self.prev_flag_button = self._button("", "previous flagged frame ⚑ (N)", m.prev_flagged, "step-backward",
                                             "36px", "player")
        self.next_flag_button = self._button("", "next flagged frame ⚑ (n)", m.next_flagged, "step-forward", "36px",
                                             "player")
        self.masked_toggle = widgets.ToggleButton(m.show_masked, description="masked", icon="eye-slash",
                                                  tooltip="masked preview on / off (m): what will be published",
                                                  layout=L(width="96px"))
        self.masked_toggle.observe(self._on_masked_toggle, "value")
        self.undo_button = self._button("", "undo (Ctrl+Z)", m.undo, "undo", "36px")
        self.redo_button = self._button("", "redo (Ctrl+Y)", m.redo, "repeat", "36px")
        self.zoom_buttons = [self._button("", "zoom in (+)", lambda: m.zoom(1.25), "search-plus", "36px", "player"),
                             self._button("", "zoom out (-)", lambda: m.zoom(0.8), "search-minus", "36px", "player"),
                             self._button("", "fit (0)", m.reset_zoom, "expand", "36px", "player")]
        pw = player_width(cw, not self.is_photo)  # picture, slider and sound strip are cw wide; the controls pw
        self.player_msg = widgets.HTML(layout=L(width=f"{pw}px"))
        self.player_msg.add_class("anonlab-msg")
        self.transport = widgets.HBox([self.play, *self.step_buttons, self.prev_flag_button, self.next_flag_button,
                                       self.frame_label])
        if self.is_photo:  # a photo has no time: no transport controls
            self.slider.layout.display = "none"
            self.transport.layout.display = "none"
        self.view_row = widgets.HBox([self.transport, self.masked_toggle, self.undo_button, self.redo_button,
                                      *self.zoom_buttons], layout=L(width=f"{pw}px", flex_flow="row wrap"))
        self._build_audio(cw)
        if not self.has_audio:
            self.audio_strip.layout.display = "none"
        left = widgets.VBox([self.canvas, self.slider, self.audio_strip, self.view_row, self.player_msg],
                            layout=L(width=f"{pw}px"))  # the track list joins it below (_build's end)

        # --- selected track tools
        self.sel_info = widgets.HTML("no track selected", layout=L(width="100%"))
        self.sel_info.add_class("anonlab-msg")
        self.sel_label = widgets.Dropdown(options=list(LABELS), description="label", tooltip="relabel the track",
                                          layout=L(width="120px"), style={"description_width": "initial"})
        self.sel_label.observe(self._on_relabel, "value")
        self.follow_n = widgets.BoundedIntText(m.follow_frames, min=1, max=100_000, description="frames",
                                               tooltip="frames to follow", layout=L(width="130px"),
                                               style={"description_width": "initial"})
        self.follow_fwd = self._button("follow", "follow the box forward with the tracker (f)",
                                       lambda: self._with_sel(lambda t: m.follow(t, 1, self.follow_n.value)),
                                       "forward")
        self.follow_back = self._button("back", "follow the box backward with the tracker (F)",
                                        lambda: self._with_sel(lambda t: m.follow(t, -1, self.follow_n.value)),
                                        "backward")
        self.keyframe_button = self._button("key", "make this frame a keyframe of the track (k)",
                                            lambda: self._with_sel(m.add_keyframe), "key")
        self.split_button = self._button("split", "split the track here (s)", lambda: self._with_sel(m.split), "cut")
        self.delete_box_button = self._button("delete box", "delete the track's box in this frame (Delete)",
                                              lambda: self._with_sel(m.delete_region), "eraser")
        self.delete_track_button = self._button("track", "delete the whole track (Shift+Delete)",
                                                lambda: self._with_sel(m.delete_track), "trash")
        self.merge_with = widgets.Dropdown(options=[], description="merge with", tooltip="the track to merge into "
                                           "this one (nearest in time first)", layout=L(width="260px"),
                                           style={"description_width": "initial"})
        self.merge_button = self._button("merge", "merge the chosen track into the selected one",
                                         lambda: self._with_sel(lambda t: m.merge(t, self.merge_with.value)),
                                         "compress")
        self.reason = widgets.Text(placeholder="reason to leave it unmasked", tooltip="recorded with your name",
                                   layout=L(width="200px"))
        self.exclude_button = self._button("leave unmasked", "leave this track unmasked (reason and name recorded)",
                                           lambda: self._with_sel(lambda t: m.exclude(t, self.reason.value)),
                                           "unlock")
        self.include_button = self._button("mask", "mask this track again", lambda: self._with_sel(m.include), "lock")
        self.label_choice = widgets.ToggleButtons(
            options=list(LABELS), value=m.draw_label, description="draw",
            tooltips=[f"drag on the picture draws a {name} box ({i + 1})" for i, name in enumerate(LABELS)],
            style={"button_width": "60px", "description_width": "34px"})
        self.label_choice.observe(lambda ch: setattr(m, "draw_label", ch["new"]), "value")
        # label layers: hide every box of a label in the view (the export still masks them)
        self.layer_buttons = {}
        for name in LABELS:
            b = widgets.ToggleButton(value=True, description=name, tooltip=f"show or hide every {name} box (the "
                                     "export masks them either way)", layout=L(width="60px"))
            b.observe(lambda ch, name=name: self._on_layer(name, ch["new"]), "value")
            self.layer_buttons[name] = b
        self.layers = widgets.HBox([widgets.HTML("show", layout=L(width="38px")), *self.layer_buttons.values()])
        self.tools_msg = widgets.HTML(layout=L(width="100%"))
        self.tools_msg.add_class("anonlab-msg")
        self.follow_row = widgets.HBox([self.follow_back, self.follow_fwd, self.follow_n])
        for w in (self.keyframe_button, self.split_button, self.follow_row) if self.is_photo else ():
            w.layout.display = "none"  # no tools for time: on one frame split and follow only said they cannot work
        self.tools = widgets.VBox([
            widgets.HTML("<b>TRACK</b>"), self.sel_info,
            widgets.HBox([self.sel_label, self.keyframe_button, self.split_button, self.delete_box_button,
                          self.delete_track_button]),
            self.follow_row, widgets.HBox([self.merge_with, self.merge_button]),
            widgets.HBox([self.reason, self.exclude_button, self.include_button]),
            self.label_choice, self.layers, self.tools_msg,
        ], layout=L(width="100%", border="1px solid #ccc", padding="4px", margin="6px 0 0 0"))
        self.tools.add_class("anonlab-tools")
        self.side = widgets.VBox([self.tools], layout=L(width=f"{SIDE_WIDTH}px", margin=f"0 0 0 {GAP}px"))
        self.side.add_class("anonlab-side")

        # --- below: the track list (scrolls), help, counts for the record
        self.track_list = widgets.VBox(layout=L(max_height=f"{8 * ROW_PX + 4}px", overflow="auto",
                                                width=f"{pw}px", flex_flow="column", display="flex"))
        help_rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(v)}</td></tr>"
                            for k, v in SHORTCUTS.items())
        self.help = widgets.HTML(f"<details><summary>keyboard (mouse over the picture)</summary>"
                                 f"<table>{help_rows}</table></details>")
        #: Counts for the record (a live summary, no coordinates): the notebook shows it in its own cell.
        self.record = widgets.HTML()
        # under the player: under both columns it began below the taller side one, off a 768-px screen
        left.children = (*left.children, widgets.HTML("<b>tracks</b> (click to select)"), self.track_list, self.help)
        # side by side on a 1366-px screen; in a narrower place (JupyterLab's notebook beside its file browser)
        # the side column goes under the picture instead of making the page scroll sideways
        main = widgets.HBox([left, self.side], layout=L(flex_flow="row wrap", align_items="flex-start"))
        self.widget = widgets.VBox([widgets.HTML(CSS), strip, self.progress, main],
                                   layout=L(max_width=f"{layout_width(cw) - GAP}px"))
        self.widget.add_class("anonlab-workbench")

    def add_panel(self, widget: widgets.Widget) -> None:
        """Append a panel to the side column."""
        self.side.children = (*self.side.children, widget)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- who works ------------------------------------------------------------------------------------
    def actor_name(self) -> str:
        """The analyst's name as typed (whitespace collapsed)."""
        return " ".join(self.analyst.value.split())

    def sync_actor(self) -> None:
        """Record the typed name with the case's next edits and decisions."""
        self.case.actor = self.actor_name() or None

    # --- event handlers (the tests call these) ------------------------------------------------------
    def _guard(self, fn: Callable[[], object], where: str = "tools"):
        """Run a handler; an anonlab error becomes a message beside the control that caused it."""
        self.poll()
        self.sync_actor()
        try:
            return fn()
        except AnonlabError as exc:
            self.model.say(str(exc), where, error=True)
            return None

    def _with_sel(self, fn: Callable[[int], object]):
        if self.model.selected is None:
            raise AnonlabError("select a box first (click it, or Tab)")
        return fn(self.model.selected)

    def _on_client_ready(self) -> None:
        """A browser view of the canvas is ready: draw everything again (it starts empty)."""
        self._redraw({"frame", "boxes", "drag"})

    def _on_mouse_down(self, x, y):
        self._guard(lambda: self.model.on_down(x, y))

    def _on_mouse_move(self, x, y):
        if self.model.drag is not None:
            self._guard(lambda: self.model.on_move(x, y))

    def _on_mouse_up(self, x, y):
        self._guard(lambda: self.model.on_up(x, y))

    def _on_mouse_out(self, x, y):
        self._guard(lambda: self.model.on_out(x, y))

    def _on_key_event(self, event: dict) -> None:
        if event.get("type", "keydown") != "keydown":
            return
        action = self._guard(lambda: self.model.on_key(
            event.get("key", ""), ctrl=bool(event.get("ctrlKey") or event.get("metaKey")),
            shift=bool(event.get("shiftKey")), alt=bool(event.get("altKey"))))
        if action == "play" and not self.is_photo:
            self.play.playing = not self.play.playing

    def _on_slider(self, change) -> None:
        if not self._syncing:
            self.model.seek(change["new"])

    def _on_masked_toggle(self, change) -> None:  # the label says what the picture shows ("masked" read as on)
        self.masked_toggle.description = "masked" if change["new"] else "original"
        if not self._syncing and change["new"] != self.model.show_masked:
            self.model.toggle_masked()

    def _on_layer(self, label: str, shown: bool) -> None:
        if not self._syncing and shown == (label in self.model.hidden_labels):
            self._guard(lambda: self.model.toggle_label_layer(label))

    def _on_relabel(self, change) -> None:
        t = self.model.selected
        if self._syncing or t is None or t not in self.case.tracks:
            return
        if LABELS[self.case.tracks[t].label] != change["new"]:
            self._guard(lambda: self.model.relabel(t, change["new"]))

    def select_track(self, track: int) -> None:
        """Select ``track`` and jump to its first frame if it has no box here (the track list's button)."""
        t = self.case.tracks.get(track)
        if t is None:
            return
        if t.value(self.model.frame) is None:
            self.model.seek(t.span()[0])
        if track in self.model.hidden:
            self.model.toggle_hidden(track)
        self.model.select(track)

    # --- drawing ----------------------------------------------------------------------------------
    def _on_model(self, changes: set[str]) -> None:
        self._redraw(changes)

    def _redraw(self, changes: set[str]) -> None:
        m = self.model
        if not self.slider.continuous_update and self.frames.proxy_ready():
            self.slider.continuous_update = True
        # with the masked preview on, an edit changes the picture itself
        if changes & {"frame", "view"} or ("case" in changes and m.show_masked):
            self._syncing = True
            try:
                self.slider.value = m.frame
                self.masked_toggle.value = m.show_masked  # the m key and the button agree (item 9)
            finally:
                self._syncing = False
            self._draw_picture()
        if changes & {"frame", "view", "flags"}:
            self.frame_label.value = (f"&nbsp;<code>{m.frame} / {m.n_frames - 1} · {fmt_time(m.time)}</code>"
                                      + (" <b>⚑</b>" if m.frame in m.flagged_frames else ""))
        if changes & {"boxes", "frame", "view", "selection"}:
            self._draw_boxes()
        if changes & {"drag", "frame", "view"}:
            self._draw_drag()
        if changes & {"tracks", "case"}:
            self._draw_tracks()
        if changes & {"selection", "tracks", "case", "frame"}:
            self._draw_selection()
        if changes & {"message", "case", "tracks"}:
            self._draw_status()
        if self.has_audio and changes & {"frame", "case", "audio", "waveform", "message"}:
            self._draw_audio()
        if "case" in changes:
            self._draw_record()

    def _draw_picture(self) -> None:
        t0 = time.perf_counter()
        img = self.model.picture()
        t1 = time.perf_counter()
        if img is None:
            return
        rgb = np.ascontiguousarray(img[..., ::-1])
        if self.send == "image":
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
            self._jpeg_widget.value = buf.tobytes()
            self.image_layer.draw_image(self._jpeg_widget, 0, 0)
        else:
            self.image_layer.put_image_data(rgb, 0, 0)
        t2 = time.perf_counter()
        self.timings["picture_ms"].append((t1 - t0) * 1000)
        self.timings["send_ms"].append((t2 - t1) * 1000)
        self.drawn["picture"] = img
        self.drawn["frame"] = self.model.frame
        self.drawn["masked"] = self.model.show_masked

    def _draw_boxes(self) -> None:
        self.drawn["boxes"], self.drawn["provisional"] = draw_boxes(self.region_layer, self.model)

    def _draw_drag(self) -> None:
        self.drawn["drag"] = draw_drag(self.ui_layer, self.model)

    def thumbnail(self, frame: int, track: int | None = None, size: int = THUMB) -> bytes:
        """A ``size``×``size`` JPEG around ``track``'s box at ``frame`` (the whole frame without one), the box
        outlined in the track's colour (`anonlab.widgets.drawing.Thumbnails`)."""
        return self._thumbs.get(frame, track, size)

    def _draw_tracks(self) -> None:
        summaries = self.model.track_summaries()
        if len(summaries) > MAX_TRACK_ROWS:
            keep = {s.id for s in sorted(summaries, key=lambda s: -s.n_frames)[:MAX_TRACK_ROWS]}
            summaries = [s for s in summaries if s.id in keep]
        summaries.sort(key=lambda s: (s.first, s.id))
        new_rows = {}
        for s in sorted(summaries, key=lambda s: s.thumb_frame):  # thumbnails in decoding order
            cached = self._rows.get(s.id)
            if cached is not None and cached[0] == s:
                new_rows[s.id] = cached
                continue
            thumb = widgets.Image(value=self.thumbnail(s.thumb_frame, s.id, THUMB), format="jpeg", width=THUMB,
                                  height=THUMB)
            sel = widgets.Button(description=f"{s.id} {s.label}", tooltip=f"select track {s.id}",
                                 layout=widgets.Layout(width="86px", height=f"{ROW_PX - 4}px"))
            sel.style.button_color = s.color
            sel.on_click(lambda _b, t=s.id: self._guard(lambda: self.select_track(t)))
            info = widgets.HTML(f"<small>frames {s.first}–{s.last} · {s.n_frames} fr · min score {s.min_score:.2f}"
                                + (" · <b>edited</b>" if s.edited else "")
                                + (f" · <b>unmasked</b>: {html.escape(s.excluded[:40])}" if s.excluded else "")
                                + "</small>", layout=widgets.Layout(flex="1 1 0", min_width="0", overflow="hidden"))
            hide = widgets.ToggleButton(s.hidden, icon="eye-slash", tooltip="hide its outline in the picture (h); "
                                        "it stays masked", layout=widgets.Layout(width="46px", flex="0 0 auto",
                                                                                 height=f"{ROW_PX - 4}px"))
            hide.observe(lambda ch, t=s.id: self._guard(
                lambda: self.model.toggle_hidden(t) if ch["new"] != (t in self.model.hidden) else None), "value")
            row = widgets.HBox([thumb, sel, info, hide], layout=widgets.Layout(
                height=f"{ROW_PX}px", min_height=f"{ROW_PX}px", flex="0 0 auto", overflow="hidden"))
            row.add_class("anonlab-row")
            new_rows[s.id] = (s, row)
        for old_id, (_, row) in self._rows.items():
            if new_rows.get(old_id, (None, None))[1] is not row:
                row.close()
        self._rows = new_rows
        rows = [new_rows[s.id][1] for s in summaries]
        self.track_list.children = rows or [widgets.HTML("<i>no tracks yet: analyse, or drag on the picture</i>")]
        self._merge_options()

    def _merge_options(self) -> None:
        """The merge menu: the tracks nearest in time to the selected one first (fragments of one object)."""
        sel = self.case.tracks.get(self.model.selected) if self.model.selected is not None else None
        span = sel.span() if sel is not None else None
        opts = []
        for t in self.case.tracks.values():
            if sel is not None and t.id == sel.id:
                continue
            sp = t.span()
            if sp is None:
                continue
            gap = 0 if span is None else max(sp[0] - span[1], span[0] - sp[1], 0)
            same = sel is None or t.label == sel.label
            opts.append(((not same, gap, t.id), (f"{t.id} {LABELS[t.label]} · f {sp[0]}–{sp[1]}", t.id)))
        options = [o for _, o in sorted(opts)]
        if list(self.merge_with.options) != options:
            self._syncing = True
            try:
                self.merge_with.options = options
            finally:
                self._syncing = False

    def _draw_selection(self) -> None:
        m = self.model
        t = self.case.tracks.get(m.selected) if m.selected is not None else None
        self._merge_options()
        if t is None:
            self.sel_info.value = "no track selected: click a box, or Tab"
            return
        span = t.span()
        v = t.value(m.frame)
        self.sel_info.value = (f"<b>track {t.id}</b> · {LABELS[t.label]} · frames {span[0]}–{span[1]} · "
                               + ("box here" if v is not None else "no box in this frame")
                               + (f" · <b>left unmasked</b>: {html.escape(t.excluded)}"
                                  + (f" (by {html.escape(t.excluded_by[0])})" if t.excluded_by[0] else "")
                                  if t.excluded else ""))
        self._syncing = True
        try:
            self.sel_label.value = LABELS[t.label]
        finally:
            self._syncing = False

    def _draw_status(self) -> None:
        c = self.case
        saved = ("not saved (no case path)" if c.path is None else
                 f"<span style='color:#b00020'>save failed: {html.escape(c.save_error)}</span>" if c.save_error else
                 f"case <code>{html.escape(c.path.name)}</code>" + (" saved" if c.autosave else ""))
        analysed = "analysed" if c.analysed else "<b>not analysed yet</b>"
        frames = "photo" if self.is_photo else f"{c.input.n_frames} frames · {c.input.fps:.3g} fps"
        self.status.value = (f"<b>{html.escape(c.input.name)}</b> · {c.input.width}×{c.input.height} · {frames} · "
                             f"{analysed} · {len(c.tracks)} track(s) · {c.edit_count} edit(s) · "
                             f"status <b>{c.review.status}</b> · {saved}")
        msgs, bad = self.model.messages, self.model.failed
        self.status_msg.value = msg_html(msgs.get("status", ""), "status" in bad)
        self.tools_msg.value = msg_html(msgs.get("tools", ""), "tools" in bad)
        self.player_msg.value = msg_html(msgs.get("player", ""), "player" in bad)
        self.undo_button.disabled = not c.can_undo
        self.redo_button.disabled = not c.can_redo

    def _draw_record(self) -> None:
        """Counts for the record (no coordinates): kept current after every change, analysis and export."""
        s = self.case.summary()
        labels = ", ".join(f"{v} {k}(s)" for k, v in s["tracks_by_label"].items())
        ex = self.last_export
        self.record.value = (
            "<b>Counts for the record</b> (no coordinates: those live only in the case file)<br>"
            f"analysed: <b>{'yes' if s['analysed'] else 'no'}</b> · tracks: {s['tracks']} ({labels}) · "
            f"masked regions: {s['regions']} · edits: {s['edits']} · left unmasked: {len(s['excluded'])} · "
            f"status: {s['status']}" + (f" by {html.escape(s['reviewer'])}" if s["reviewer"] else "")
            + (f"<br>last export: {ex.get('frames', 0)} frame(s), {ex['case']['regions']} masked region(s)"
               + (f", {ex['case']['whole_frames']} frame(s) masked whole" if ex["case"].get("whole_frames") else "")
               if ex else earlier_export_html(Path(self.export_path.value).expanduser(), self.case)))

    def close(self) -> None:
        """Stop the proxy thread and the analysis, release the video and close the widgets."""
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.job.join(5)
        self.frames.close()
        for _, row in self._rows.values():
            row.close()
        if self.events is not None:
            self.events.close()
        self.canvas.close()
        self.widget.close()
