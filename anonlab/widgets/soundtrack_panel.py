"""The sound-track part of the workbench view: the waveform strip under the player and the AUDIO box.

A mixin of `anonlab.widgets.workbench.Workbench`, like `anonlab.widgets.actions.LongActions`: it builds the
strip and the box's controls (mode, in, out, add, remove), decodes the waveform once in a thread
(`anonlab.widgets.waveform.waveform_peaks`: two floats a pixel column whatever the duration) and redraws
both from the editing model (`anonlab.widgets.soundtrack.SoundTrackEditing`). Everything it changes goes
through the model, so the tests drive it without a browser.
"""

from __future__ import annotations

import asyncio
import html
import threading

import cv2
import ipywidgets as widgets
import numpy as np

from anonlab.media.audio import AUDIO_MODES
from anonlab.widgets.layout import fmt_time, msg_html
from anonlab.widgets.waveform import STRIP_HEIGHT, draw_strip, waveform_peaks

__all__ = ["SoundTrackPanel"]


class SoundTrackPanel:
    """The strip (``audio_strip``) and the AUDIO box (``audio_box``) of a `Workbench`."""

    def _build_audio(self, cw: int) -> None:
        """Make the strip (``cw`` pixels wide, the canvas' width) and the AUDIO box's controls."""
        L = widgets.Layout
        m = self.model
        # under the slider (same width: a point of the strip is the slider's time there)
        self.audio_strip = widgets.Image(format="png", width=cw, height=STRIP_HEIGHT,
                                         layout=L(width=f"{cw}px", height=f"{STRIP_HEIGHT}px", margin="0"))
        self.audio_mode = widgets.ToggleButtons(
            options=list(AUDIO_MODES), value=m.audio[0],
            tooltips=["export the sound track as it is", "silence in the ranges", "a 1 kHz tone in the ranges",
                      "disguise the voice in the ranges (pitch and formants; words stay audible)"],
            style={"button_width": "58px"})
        self.audio_mode.observe(self._on_audio_mode, "value")
        self.audio_in_button = self._button("in", "a range starts at this frame", m.mark_audio_in, "",
                                            "46px", "audio")
        self.audio_out_button = self._button("out", "the range ends with this frame", m.mark_audio_out, "",
                                             "46px", "audio")
        self.audio_add_button = self._button("add range", "add the range from 'in' to 'out'",
                                             m.add_audio_range, "plus", where="audio")
        self.audio_remove_button = self._button("remove", "remove the range at this frame",
                                                m.remove_audio_range, "minus", where="audio")
        self.audio_info = widgets.HTML(layout=L(width="100%"))
        self.audio_msg = widgets.HTML(layout=L(width="100%"))
        self.audio_msg.add_class("anonlab-msg")
        self.audio_box = widgets.VBox([
            widgets.HTML("<b>AUDIO</b> <small>voices and spoken names are personal data too</small>"),
            self.audio_mode,
            widgets.HBox([self.audio_in_button, self.audio_out_button, self.audio_add_button,
                          self.audio_remove_button]),
            self.audio_info, self.audio_msg,
        ], layout=L(width="100%", border="1px solid #ccc", padding="4px", margin="6px 0 0 0"))

    def _on_audio_mode(self, change) -> None:
        if not self._syncing and change["new"] != self.model.audio[0]:
            self._guard(lambda: self.model.set_audio_mode(change["new"]), "audio")

    def _start_waveform(self) -> None:
        """Decode the sound track once, in a thread, into the strip's peaks (the strip shows the ranges and
        marks at once, the waveform when it is ready; memory: two floats a pixel column)."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        reader = self.frames.reader
        origin = float(reader.pts[0] * reader.time_base) if hasattr(reader, "pts") else 0.0
        columns, duration = self.model.viewport.canvas_w, self.model.duration

        def work() -> None:
            peaks = waveform_peaks(self.input_path, columns, duration, origin)
            self._dispatch(lambda: self._set_peaks(peaks))

        self.waveform_thread = threading.Thread(target=work, name="anonlab-waveform", daemon=True)
        self.waveform_thread.start()

    def _set_peaks(self, peaks) -> None:
        self._peaks = peaks
        self._redraw({"waveform"})

    def _draw_audio(self) -> None:
        """The sound-track strip (waveform, ranges in the mode's colour, in/out marks, this frame) and the
        AUDIO box's state."""
        m = self.model
        mode, ranges = m.audio
        img = draw_strip(self._peaks, m.viewport.canvas_w, m.duration, ranges=ranges, mode=mode,
                         marks=(m.audio_in, m.audio_out), now=m.time)
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
        self.audio_strip.value = buf.tobytes()
        self.drawn["waveform"] = img
        self.drawn["waveform_peaks"] = self._peaks is not None
        self._syncing = True
        try:
            self.audio_mode.value = mode
        finally:
            self._syncing = False
        spans = ", ".join(f"{fmt_time(a)}–{fmt_time(b)}" for a, b in ranges[:6]) + (" …" if len(ranges) > 6 else "")
        total = sum(b - a for a, b in ranges)
        where = (f"{len(ranges)} range(s), {total:.2f} s: {spans}" if ranges else
                 "no ranges: the whole track" if mode != "keep" else "no ranges")
        marks = " · ".join(f"{k} {fmt_time(t)}" for k, t in (("in", m.audio_in), ("out", m.audio_out)) if t is not None)
        self.audio_info.value = (f"<small>{html.escape(where)}" + (f" · marked {html.escape(marks)}" if marks else "")
                                 + "</small>")
        self.audio_msg.value = msg_html(m.messages.get("audio", ""), "audio" in m.failed)
