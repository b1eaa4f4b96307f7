"""The workbench view: ipywidgets + ipycanvas + ipyevents around an `EditorModel`.

Thin on purpose: every handler here converts a widget event into one model call, and every redraw reads
the model. The tests instantiate `Workbench` without a browser and call the handlers (``_on_mouse_down``,
``_on_key_event``, buttons' ``click()``), then check ``drawn`` (what the last redraw put on each layer).

Frames reach the browser as JPEG: ``put_image_data`` (ipycanvas encodes a 3-channel array as JPEG) of the
canvas-sized picture, or, with ``send="image"``, an ``ipywidgets.Image`` holding a JPEG drawn with
``draw_image``. Pictures come from `FrameSource` (cache, then proxy, then an exact decode).
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Callable

import cv2
import ipywidgets as widgets
import numpy as np
from ipycanvas import MultiCanvas, hold_canvas

from anonlab.case import Case, case_report, default_case_path, render_case
from anonlab.report import write_report
from anonlab.errors import AnonlabError
from anonlab.regions import LABELS
from anonlab.settings import Settings
from anonlab.widgets.model import SHORTCUTS, EditorModel, FrameSource, handle_points

#: The canvas fits in this box (pixels); the image keeps its aspect ratio.
MAX_CANVAS = (960, 600)
#: Rows shown in the track list (the longest tracks first beyond that).
MAX_TRACK_ROWS = 150
THUMB = 56


def canvas_size_for(width: int, height: int, box: tuple[int, int] = MAX_CANVAS) -> tuple[int, int]:
    s = min(box[0] / width, box[1] / height, 1.0)
    return max(1, round(width * s)), max(1, round(height * s))


def _fmt_time(t: float) -> str:
    m, s = divmod(max(t, 0.0), 60)
    return f"{int(m)}:{s:05.2f}"


class Workbench:
    """Open a video or photo (or a case file, or a `Case`) for review and editing.

    Args:
        path_or_case: media file, ``*.case.json``, or a `Case`. For a media file the case file beside it
            (``NAME.case.json``) is loaded when it exists, else a new case is started there.
        settings: settings for a new case's analysis (a loaded case keeps its own).
        case_path: where the case is saved (default beside the input).
        autosave: save the case after every change.
        proxy: build the low-resolution proxy in the background for smooth scrubbing.
        send: ``"put"`` (``put_image_data``) or ``"image"`` (an ``ipywidgets.Image`` JPEG + ``draw_image``).
        output: default export path (default ``NAME_anonymized.EXT`` beside the input).

    Display it as the last expression of a cell, or ``display(wb)``.

    Hooks for the review queue: ``flagged_frames`` (set via ``model.set_flagged``) and ``export_gate``
    (a callable that raises `AnonlabError` to block an export).
    """

    def __new__(cls, path_or_case=None, *args, **kwargs):
        # A folder of photos opens as a chooser over one workbench per photo.
        if isinstance(path_or_case, (str, Path)) and Path(path_or_case).is_dir():
            from anonlab.widgets.folder import FolderWorkbench

            return FolderWorkbench(path_or_case, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, path_or_case, settings: Settings | None = None, *, case_path: str | Path | None = None,
                 autosave: bool = True, proxy: bool = True, send: str = "put", output: str | Path | None = None,
                 canvas_box: tuple[int, int] = MAX_CANVAS) -> None:
        self.case = self._open_case(path_or_case, settings, case_path)
        self.case.autosave = autosave and self.case.path is not None
        self.input_path = self.case.locate_input()
        self.frames = FrameSource(self.input_path)
        info = self.case.input
        self.model = EditorModel(self.case, self.frames, canvas_size_for(info.width, info.height, canvas_box))
        self.send = send
        self.export_gate: Callable[[Case], None] | None = None
        self.drawn: dict = {}
        self.timings: dict[str, list[float]] = {"picture_ms": [], "send_ms": []}
        self._syncing = False
        self._rows: dict[int, tuple] = {}
        self._thumbs: dict[tuple, bytes] = {}
        self._build(output)
        self.model.observe(self._on_model)
        self._redraw({"frame", "boxes", "drag", "tracks", "selection"})
        # The review queue steps the player through what needs a look and gates the export (issue 7).
        from anonlab.widgets.review_panel import ReviewPanel

        self.review = ReviewPanel(self)
        self.add_panel(self.review.widget)
        self.export_gate = self.review.session.gate
        if proxy and info.kind == "video":
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
        self._redraw({"frame"})

    # --- opening ----------------------------------------------------------------------------------
    @staticmethod
    def _open_case(path_or_case, settings, case_path) -> Case:
        if isinstance(path_or_case, Case):
            return path_or_case
        p = Path(path_or_case)
        if p.name.endswith(".json"):
            case = Case.load(p)
            case.verify_input()
            return case
        cp = Path(case_path) if case_path is not None else default_case_path(p)
        if cp.exists():
            case = Case.load(cp)
            case.verify_input(p)
            if Path(case.input.path) != p.resolve():
                case.input.path = str(p.resolve())
            return case
        case = Case.new(p, settings)
        case.path = cp
        return case

    # --- layout -----------------------------------------------------------------------------------
    def _build(self, output) -> None:
        m, info = self.model, self.case.input
        cw, ch = m.viewport.canvas_w, m.viewport.canvas_h
        self.canvas = MultiCanvas(3, width=cw, height=ch)
        self.canvas.layout = widgets.Layout(width=f"{cw}px", height=f"{ch}px")
        self.image_layer, self.region_layer, self.ui_layer = self.canvas[0], self.canvas[1], self.canvas[2]
        self.canvas.on_mouse_down(self._on_mouse_down)
        self.canvas.on_mouse_move(self._on_mouse_move)
        self.canvas.on_mouse_up(self._on_mouse_up)
        self.canvas.on_mouse_out(self._on_mouse_out)
        self._jpeg_widget = widgets.Image(format="jpeg")
        try:
            from ipyevents import Event

            self.events = Event(source=self.canvas, watched_events=["keydown"], prevent_default_action=True)
            self.events.on_dom_event(self._on_key_event)
        except ImportError:  # pragma: no cover - ipyevents is in the jupyter extra
            self.events = None

        last = max(info.n_frames - 1, 0)
        self.slider = widgets.IntSlider(0, 0, last, 1, continuous_update=True, readout=False,
                                        layout=widgets.Layout(width=f"{max(cw, 300)}px"))
        self.slider.observe(self._on_slider, "value")
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=max(int(1000 / (info.fps or 25)), 20),
                                 description="play", show_repeat=False, layout=widgets.Layout(width="auto"))
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.frame_label = widgets.HTML()

        def button(desc, tip, fn, icon="", width="auto"):
            b = widgets.Button(description=desc, tooltip=tip, icon=icon, layout=widgets.Layout(width=width))
            b.on_click(lambda _b: self._guard(fn))
            return b

        self.step_buttons = [button(d, f"step {k:+d} (Shift+arrow: 10)", (lambda k=k: m.step(k)), width="48px")
                             for d, k in (("-10", -10), ("-1", -1), ("+1", 1), ("+10", 10))]
        self.prev_flag_button = button("", "previous flagged frame (N)", m.prev_flagged, "step-backward", "40px")
        self.next_flag_button = button("", "next flagged frame (n)", m.next_flagged, "step-forward", "40px")
        self.masked_toggle = widgets.ToggleButton(False, description="masked preview", tooltip="m",
                                                  icon="eye-slash")
        self.masked_toggle.observe(self._on_masked_toggle, "value")
        self.label_choice = widgets.ToggleButtons(options=list(LABELS), value=m.draw_label,
                                                  tooltips=["draw faces (1)", "draw plates (2)"],
                                                  style={"button_width": "56px"})
        self.label_choice.observe(lambda ch: setattr(m, "draw_label", ch["new"]), "value")
        self.undo_button = button("undo", "Ctrl+Z", m.undo, "undo")
        self.redo_button = button("redo", "Ctrl+Y", m.redo, "repeat")
        self.zoom_buttons = [button("", "zoom in (+)", lambda: m.zoom(1.25), "search-plus", "36px"),
                             button("", "zoom out (-)", lambda: m.zoom(0.8), "search-minus", "36px"),
                             button("", "fit (0)", m.reset_zoom, "expand", "36px")]

        self.analyse_button = button("analyse", "detect and track faces and plates", self.analyse, "search")
        self.export_path = widgets.Text(str(output or _default_output(self.input_path)), description="output",
                                        layout=widgets.Layout(width="420px"))
        self.overwrite = widgets.Checkbox(False, description="overwrite", indent=False,
                                          layout=widgets.Layout(width="100px"))
        self.export_button = button("export", "render the masked output", self.export, "download")
        self.progress = widgets.Output(layout=widgets.Layout(min_height="0px"))
        self.status = widgets.HTML()
        self.message = widgets.HTML()

        # selected-track panel
        self.sel_info = widgets.HTML("no track selected")
        self.sel_label = widgets.Dropdown(options=list(LABELS), description="label",
                                          layout=widgets.Layout(width="160px"))
        self.sel_label.observe(self._on_relabel, "value")
        self.follow_n = widgets.BoundedIntText(m.follow_frames, min=1, max=100_000, description="frames",
                                               layout=widgets.Layout(width="140px"))
        self.follow_fwd = button("follow", "follow forward (f)", lambda: self._with_sel(lambda t: m.follow(
            t, 1, self.follow_n.value)), "forward")
        self.follow_back = button("back", "follow backward (F)", lambda: self._with_sel(lambda t: m.follow(
            t, -1, self.follow_n.value)), "backward")
        self.keyframe_button = button("key", "keyframe here (k)", lambda: self._with_sel(m.add_keyframe), "key")
        self.split_button = button("split", "split here (s)", lambda: self._with_sel(m.split), "cut")
        self.delete_box_button = button("delete box", "delete this frame's box (Delete)",
                                        lambda: self._with_sel(m.delete_region), "eraser")
        self.delete_track_button = button("delete track", "delete the whole track (Shift+Delete)",
                                          lambda: self._with_sel(m.delete_track), "trash")
        self.merge_with = widgets.Dropdown(options=[], description="merge", layout=widgets.Layout(width="160px"))
        self.merge_button = button("merge", "merge the chosen track into the selected one",
                                   lambda: self._with_sel(lambda t: m.merge(t, self.merge_with.value)), "compress")
        self.reason = widgets.Text(placeholder="reason to leave unmasked", layout=widgets.Layout(width="180px"))
        self.exclude_button = button("unmask", "leave this track unmasked (the reason is recorded)",
                                     lambda: self._with_sel(lambda t: m.exclude(t, self.reason.value)), "unlock")
        self.include_button = button("mask", "mask this track again", lambda: self._with_sel(m.include), "lock")
        self.track_list = widgets.VBox(layout=widgets.Layout(max_height=f"{ch}px", overflow="auto",
                                                             width="400px"))
        help_rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(v)}</td></tr>"
                            for k, v in SHORTCUTS.items())
        self.help = widgets.HTML(f"<details><summary>keyboard (mouse over the picture)</summary>"
                                 f"<table>{help_rows}</table></details>")

        player = widgets.VBox([self.slider, widgets.HBox([
            self.play, *self.step_buttons, widgets.HTML("&nbsp;⚑"), self.prev_flag_button, self.next_flag_button,
            self.frame_label])])
        tools = widgets.HBox([self.label_choice, self.masked_toggle, self.undo_button, self.redo_button,
                              *self.zoom_buttons])
        selected = widgets.VBox([
            self.sel_info, widgets.HBox([self.sel_label, self.keyframe_button, self.split_button]),
            widgets.HBox([self.follow_back, self.follow_fwd, self.follow_n]),
            widgets.HBox([self.delete_box_button, self.delete_track_button]),
            widgets.HBox([self.merge_with, self.merge_button]),
            widgets.HBox([self.reason, self.exclude_button, self.include_button]),
        ])
        left = widgets.VBox([tools, self.canvas, player, self.message, self.help])
        self.side = widgets.VBox([widgets.HTML("<b>tracks</b>"), self.track_list, selected],
                                 layout=widgets.Layout(width="420px"))
        right = self.side
        actions = widgets.HBox([self.analyse_button, self.export_path, self.overwrite, self.export_button])
        self.widget = widgets.VBox([self.status, actions, self.progress, widgets.HBox([left, right])])
        self.widget.add_class("anonlab-workbench")

    def add_panel(self, widget: widgets.Widget) -> None:
        """Append a panel under the track list (the review queue's, for instance)."""
        self.side.children = (*self.side.children, widget)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- event handlers (the tests call these) ------------------------------------------------------
    def _guard(self, fn: Callable[[], object]):
        try:
            return fn()
        except AnonlabError as exc:
            self.model.say(str(exc))
            return None

    def _with_sel(self, fn: Callable[[int], object]):
        if self.model.selected is None:
            raise AnonlabError("select a box first (click it, or Tab)")
        return fn(self.model.selected)

    def _on_mouse_down(self, x, y):
        self._guard(lambda: self.model.on_down(x, y))

    def _on_mouse_move(self, x, y):
        if self.model.drag is not None:
            self._guard(lambda: self.model.on_move(x, y))

    def _on_mouse_up(self, x, y):
        self._guard(lambda: self.model.on_up(x, y))

    def _on_mouse_out(self, x, y):
        self.model.on_out()

    def _on_key_event(self, event: dict) -> None:
        if event.get("type", "keydown") != "keydown":
            return
        action = self._guard(lambda: self.model.on_key(
            event.get("key", ""), ctrl=bool(event.get("ctrlKey") or event.get("metaKey")),
            shift=bool(event.get("shiftKey")), alt=bool(event.get("altKey"))))
        if action == "play":
            self.play.playing = not self.play.playing

    def _on_slider(self, change) -> None:
        if not self._syncing:
            self.model.seek(change["new"])

    def _on_masked_toggle(self, change) -> None:
        if change["new"] != self.model.show_masked:
            self.model.toggle_masked()

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

    # --- long actions -----------------------------------------------------------------------------
    def _in_progress(self, fn: Callable[[], object]):
        """Run ``fn`` with its progress bars shown in the workbench.

        In a kernel, an ``Output`` widget used as a context manager swallows exceptions (it displays
        them instead), so the error is carried out of the ``with`` block and raised here.
        """
        result, error = None, None
        with self.progress:
            try:
                result = fn()
            except BaseException as exc:  # re-raised below, outside the Output widget
                error = exc
        if error is not None:
            raise error
        return result

    def analyse(self) -> None:
        """Detect and track (progress bar in the workbench), then merge the analysis into the case."""
        from anonlab.pipeline import analyse

        self.analyse_button.disabled = True
        self.model.say("analysing…")
        try:
            analysis = self._in_progress(lambda: analyse(self.input_path, self.case.settings, progress=True))
            self.case.set_analysis(analysis)
            self.review.session.scene_cuts = list(self.case.scene_cuts)
            self.review.refresh()
            self.model.say(f"analysis done: {len(self.case.tracks)} track(s), "
                           f"{len(self.review.session.pending)} review item(s)")
        except AnonlabError as exc:
            self.model.say(str(exc))
        finally:
            self.analyse_button.disabled = False
            self.progress.clear_output()

    def export(self) -> dict | None:
        """Render the output with exactly the case's regions (after the review gate, when one is set)."""
        out = Path(self.export_path.value).expanduser()
        self.export_button.disabled = True
        self.model.say(f"exporting {out.name}…")
        try:
            info = self._in_progress(lambda: render_case(self.case, out, overwrite=self.overwrite.value,
                                                         progress=True, gate=self.export_gate))
            report = case_report(self.case, out, info, review=self.review.session.report_fields())
            write_report(report, out.with_name(out.name + ".report.json"))
            self.model.say(f"exported {out.name}: {info.get('frames', 0)} frame(s), "
                           f"{info['case']['regions']} masked region(s); report {out.name}.report.json")
            self.last_export = info
            return info
        except AnonlabError as exc:
            self.model.say(f"export failed: {exc}")
            return None
        finally:
            self.export_button.disabled = False
            self.progress.clear_output()

    # --- drawing ----------------------------------------------------------------------------------
    def _on_model(self, changes: set[str]) -> None:
        self._redraw(changes)

    def _redraw(self, changes: set[str]) -> None:
        m = self.model
        if not self.slider.continuous_update and self.frames.proxy_ready():
            self.slider.continuous_update = True
        if "frame" in changes or "view" in changes:
            self._syncing = True
            try:
                self.slider.value = m.frame
            finally:
                self._syncing = False
            self._draw_picture()
            self.frame_label.value = (f"&nbsp;<code>{m.frame} / {m.n_frames - 1} · {_fmt_time(m.time)}</code>"
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
        m, vp = self.model, self.model.viewport
        layer = self.region_layer
        drawn = []
        with hold_canvas():
            layer.clear()
            layer.font = "13px sans-serif"
            for b in m.boxes():
                x1, y1, x2, y2 = vp.box_to_canvas(b.box)
                layer.stroke_style = b.colour
                layer.line_width = 3 if b.selected else 2
                layer.set_line_dash([6, 4] if b.excluded else [])
                layer.stroke_rect(x1, y1, x2 - x1, y2 - y1)
                text = f"{b.track} {b.label}" + (" ◆" if b.keyframe else "") + (" (unmasked)" if b.excluded else "")
                layer.fill_style = b.colour
                layer.fill_text(text, x1 + 2, max(y1 - 4, 12))
                if b.selected:
                    layer.set_line_dash([])
                    for hx, hy in handle_points((x1, y1, x2, y2)).values():
                        layer.fill_rect(hx - 3, hy - 3, 7, 7)
                drawn.append({"track": b.track, "canvas": (x1, y1, x2, y2), "colour": b.colour,
                              "selected": b.selected, "excluded": b.excluded})
        self.drawn["boxes"] = drawn

    def _draw_drag(self) -> None:
        d, vp = self.model.drag, self.model.viewport
        layer = self.ui_layer
        with hold_canvas():
            layer.clear()
            if d is not None and d.moved and d.box is not None:
                x1, y1, x2, y2 = vp.box_to_canvas(d.box)
                layer.stroke_style = "#ffffff"
                layer.line_width = 2
                layer.set_line_dash([4, 4])
                layer.stroke_rect(x1, y1, x2 - x1, y2 - y1)
                self.drawn["drag"] = (x1, y1, x2, y2)
            else:
                self.drawn["drag"] = None

    def _thumbnail(self, s) -> bytes:
        key = (s.id, s.thumb_frame, s.thumb_box)
        if key not in self._thumbs:
            vp = self.model.viewport
            pic = self.frames.view(s.thumb_frame, type(vp)(vp.image_w, vp.image_h, vp.canvas_w, vp.canvas_h))
            x1, y1, x2, y2 = (c * vp.fit for c in s.thumb_box)
            ox, oy = vp.image_rect()[:2]
            pad = 0.2 * max(x2 - x1, y2 - y1)
            xa, ya = int(max(x1 - pad + ox, 0)), int(max(y1 - pad + oy, 0))
            xb, yb = int(min(x2 + pad + ox, vp.canvas_w)), int(min(y2 + pad + oy, vp.canvas_h))
            crop = pic[ya:max(yb, ya + 1), xa:max(xb, xa + 1)]
            crop = cv2.resize(crop, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
            self._thumbs[key] = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
        return self._thumbs[key]

    def _draw_tracks(self) -> None:
        summaries = self.model.track_summaries()
        if len(summaries) > MAX_TRACK_ROWS:
            keep = {s.id for s in sorted(summaries, key=lambda s: -s.n_frames)[:MAX_TRACK_ROWS]}
            summaries = [s for s in summaries if s.id in keep]
        summaries.sort(key=lambda s: (s.first, s.id))
        rows = []
        new_rows = {}
        for s in sorted(summaries, key=lambda s: s.thumb_frame):  # thumbnails in decoding order
            cached = self._rows.get(s.id)
            if cached is not None and cached[0] == s:
                new_rows[s.id] = cached
                continue
            thumb = widgets.Image(value=self._thumbnail(s), format="jpeg", width=THUMB, height=THUMB)
            sel = widgets.Button(description=f"{s.id} {s.label}", tooltip=f"select track {s.id}",
                                 layout=widgets.Layout(width="76px"))
            sel.style.button_color = s.colour
            sel.on_click(lambda _b, t=s.id: self._guard(lambda: self.select_track(t)))
            info = widgets.HTML(f"<small>{s.first}–{s.last} · {s.n_frames} fr · min {s.min_score:.2f}"
                                + (" · <b>edited</b>" if s.edited else "")
                                + (f"<br><b>unmasked</b>: {html.escape(s.excluded[:60])}" if s.excluded else "")
                                + "</small>", layout=widgets.Layout(width="150px"))
            hide = widgets.ToggleButton(s.hidden, icon="eye-slash", tooltip="hide in the picture (h)",
                                        layout=widgets.Layout(width="44px"))
            hide.observe(lambda ch, t=s.id: self._guard(
                lambda: self.model.toggle_hidden(t) if ch["new"] != (t in self.model.hidden) else None), "value")
            new_rows[s.id] = (s, widgets.HBox([thumb, sel, info, hide]))
        for old_id, (_, row) in self._rows.items():
            if new_rows.get(old_id, (None, None))[1] is not row:
                row.close()
        self._rows = new_rows
        rows = [new_rows[s.id][1] for s in summaries]
        self.track_list.children = rows or [widgets.HTML("<i>no tracks yet: analyse, or drag on the picture</i>")]
        self.merge_with.options = [(f"{s.id} {s.label}", s.id) for s in summaries]

    def _draw_selection(self) -> None:
        m = self.model
        t = self.case.tracks.get(m.selected) if m.selected is not None else None
        if t is None:
            self.sel_info.value = "no track selected"
            return
        span = t.span()
        v = t.value(m.frame)
        self.sel_info.value = (f"<b>track {t.id}</b> · frames {span[0]}–{span[1]} · "
                               + ("box here" if v is not None else "no box in this frame")
                               + (f" · <b>left unmasked</b>: {html.escape(t.excluded)}" if t.excluded else ""))
        self._syncing = True
        try:
            self.sel_label.value = LABELS[t.label]
        finally:
            self._syncing = False

    def _draw_status(self) -> None:
        c = self.case
        saved = ("not saved (no case path)" if c.path is None else
                 f"<span style='color:#b00'>save failed: {html.escape(c.save_error)}</span>" if c.save_error else
                 f"case <code>{html.escape(c.path.name)}</code>" + (" (autosaved)" if c.autosave else ""))
        analysed = "" if c.analysed else " · <b>not analysed yet</b>"
        self.status.value = (f"<b>{html.escape(c.input.name)}</b> · {c.input.width}×{c.input.height} · "
                             f"{c.input.n_frames} frame(s) · {len(c.tracks)} track(s) · {c.edit_count} edit(s) · "
                             f"status <b>{c.review.status}</b> · {saved}{analysed}")
        self.message.value = f"<i>{html.escape(self.model.message)}</i>" if self.model.message else ""
        self.undo_button.disabled = not c.can_undo
        self.redo_button.disabled = not c.can_redo

    def close(self) -> None:
        """Stop the proxy thread, release the video and close the widgets."""
        self.frames.close()
        for _, row in self._rows.values():
            row.close()
        if self.events is not None:
            self.events.close()
        self.canvas.close()
        self.widget.close()


def _default_output(path: Path) -> Path:
    from anonlab.pipeline import default_output

    return default_output(path)
