"""Drawing the editing model on the workbench's canvas layers, and the thumbnails of tracks.

`draw_boxes` and `draw_drag` paint the region and interaction layers of the ipycanvas `MultiCanvas` from the
model (`anonlab.widgets.editor.EditorModel`) and return what they drew, which the view keeps in
``Workbench.drawn`` for the tests. `Thumbnails` crops a track's box out of the fitted picture for the track
list and the review card, as small JPEGs, cached. They read the model and write pixels, nothing else: the
view decides when to call them (`anonlab.widgets.workbench.Workbench._redraw`).
"""

from __future__ import annotations

import cv2
import numpy as np
from ipycanvas import hold_canvas

from anonlab.case import Case
from anonlab.render.mask import mask_frame
from anonlab.widgets.boxes import handle_points, hex_to_bgr, track_color
from anonlab.widgets.editor import EditorModel
from anonlab.widgets.frames import FrameSource
from anonlab.widgets.layout import THUMB


def draw_boxes(layer, model: EditorModel) -> tuple[list[dict], int]:
    """Draw the boxes of the current frame on ``layer`` (the selected one with its handles; the settled part
    of a running analysis dashed white). Returns what was drawn, for ``Workbench.drawn``: one dict per box,
    and the number of provisional boxes."""
    m, vp = model, model.viewport
    drawn = []
    with hold_canvas():
        layer.clear()
        layer.font = "13px sans-serif"
        for b in m.boxes():
            x1, y1, x2, y2 = vp.box_to_canvas(b.box)
            layer.stroke_style = b.color
            layer.line_width = 3 if b.selected else 2
            layer.set_line_dash([6, 4] if b.excluded else [])
            layer.stroke_rect(x1, y1, x2 - x1, y2 - y1)
            text = f"{b.track} {b.label}" + (" ◆" if b.keyframe else "") + (" (unmasked)" if b.excluded else "")
            layer.fill_style = b.color
            layer.fill_text(text, x1 + 2, max(y1 - 4, 12))
            if b.selected:
                layer.set_line_dash([])
                for hx, hy in handle_points((x1, y1, x2, y2)).values():
                    layer.fill_rect(hx - 3, hy - 3, 7, 7)
            drawn.append({"track": b.track, "canvas": (x1, y1, x2, y2), "color": b.color,
                          "selected": b.selected, "excluded": b.excluded})
        prov = m.provisional_at()
        if len(prov):  # the running analysis: dashed white, not editable yet
            layer.stroke_style = "#ffffff"
            layer.line_width = 1
            layer.set_line_dash([3, 3])
            for box in prov.xyxy.tolist():
                x1, y1, x2, y2 = vp.box_to_canvas(box)
                layer.stroke_rect(x1, y1, x2 - x1, y2 - y1)
            layer.set_line_dash([])
    return drawn, len(prov)


def draw_drag(layer, model: EditorModel) -> tuple[float, float, float, float] | None:
    """Draw the box of the drag in progress on ``layer`` (dashed white); returns it in canvas pixels, or None."""
    d, vp = model.drag, model.viewport
    drawn = None
    with hold_canvas():
        layer.clear()
        if d is not None and d.moved and d.box is not None:
            x1, y1, x2, y2 = vp.box_to_canvas(d.box)
            layer.stroke_style = "#ffffff"
            layer.line_width = 2
            layer.set_line_dash([4, 4])
            layer.stroke_rect(x1, y1, x2 - x1, y2 - y1)
            drawn = (x1, y1, x2, y2)
    return drawn


class Thumbnails:
    """Small square JPEGs around a track's box (the whole frame without one), cached by frame, track, box and
    size (at most about 2,000; then the cache starts again)."""

    def __init__(self, case: Case, frames: FrameSource, model: EditorModel) -> None:
        self.case, self.frames, self.model = case, frames, model
        self._cache: dict[tuple, bytes] = {}

    def get(self, frame: int, track: int | None = None, size: int = THUMB) -> bytes:
        """A ``size``×``size`` JPEG around ``track``'s box at ``frame`` (the whole frame without one), the box
        outlined in the track's colour."""
        t = self.case.tracks.get(track) if track is not None and track >= 0 else None
        v = t.value(frame) if t is not None else None
        # unmasked, with the box outlined: the analyst judges whether the box covers the face (the picture
        # beside shows the masked result)
        masked = False
        key = (frame, track, None if v is None else tuple(round(c, 1) for c in v[:4]), masked, size)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        vp = self.model.viewport
        fit = type(vp)(vp.image_w, vp.image_h, vp.canvas_w, vp.canvas_h, aspect=vp.aspect)
        pic = self.frames.view(frame, fit).copy()
        ox, oy = fit.image_rect()[:2]
        if masked:
            regions = self.case.regions_at(frame)
            if len(regions):
                scale = np.array([fit.sx, fit.sy, fit.sx, fit.sy], np.float32)
                shift = np.array([ox, oy, ox, oy], np.float32)
                pic = mask_frame(pic, regions.replace(xyxy=regions.xyxy * scale + shift), self.case.settings)
        if v is None:
            x1, y1, x2, y2 = fit.image_rect()[0], fit.image_rect()[1], fit.image_rect()[0] + fit.image_rect()[2], \
                fit.image_rect()[1] + fit.image_rect()[3]
            crop = pic[y1:y2, x1:x2]
        else:
            x1, x2 = v[0] * fit.sx, v[2] * fit.sx
            y1, y2 = v[1] * fit.sy, v[3] * fit.sy
            x1, x2, y1, y2 = x1 + ox, x2 + ox, y1 + oy, y2 + oy
            color = hex_to_bgr(track_color(track)) if t.excluded is None else (158, 158, 158)
            cv2.rectangle(pic, (int(x1), int(y1)), (int(x2), int(y2)), color, 1)
            pad = 0.3 * max(x2 - x1, y2 - y1) + 2
            xa, ya = int(max(x1 - pad, 0)), int(max(y1 - pad, 0))
            xb, yb = int(min(x2 + pad, vp.canvas_w)), int(min(y2 + pad, vp.canvas_h))
            crop = pic[ya:max(yb, ya + 1), xa:max(xb, xa + 1)]
        h, w = crop.shape[:2]
        s = size / max(h, w, 1)
        crop = cv2.resize(crop, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        square = np.zeros((size, size, 3), np.uint8)
        square[(size - crop.shape[0]) // 2:(size - crop.shape[0]) // 2 + crop.shape[0],
               (size - crop.shape[1]) // 2:(size - crop.shape[1]) // 2 + crop.shape[1]] = crop
        data = cv2.imencode(".jpg", square, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
        if len(self._cache) > 2000:
            self._cache.clear()
        self._cache[key] = data
        return data
