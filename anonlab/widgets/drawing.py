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


#: Box labels: the font, the height of a label's line and a character's width, canvas pixels. The kernel cannot
#: measure the browser's text, so the width is an estimate on the wide side (13-px sans-serif digits and letters
#: are 6 to 8 px): labels placed apart then stay apart in the fonts browsers pick.
LABEL_FONT = "13px sans-serif"
LABEL_LINE = 16
LABEL_CHAR = 7.0


def label_width(text: str) -> float:
    """Estimated width of a box label on the canvas, pixels, with 2 px of padding each side."""
    return LABEL_CHAR * len(text) + 4


def _ink_on(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (a ``#rrggbb`` tag)."""
    b, g, r = hex_to_bgr(color)
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def place_labels(boxes, widths, canvas_w: float, canvas_h: float, line: float = LABEL_LINE) -> list[tuple]:
    """Where each box's label goes: ``(x, y, w, h)`` of its line, canvas pixels, one per box in the order given.

    A label sits just above its box, or just inside its top edge when the box touches the picture's top (there
    the labels of faces in a row all fell on the same line, drawn over one another). It is kept on the
    canvas, and moves down a line at a time past the labels placed before it: pass the selected box first so
    its label stays at its box.
    """
    placed: list[tuple] = []
    for (x1, y1, x2, y2), w in zip(boxes, widths):
        x = float(min(max(x1, 0.0), max(canvas_w - w, 0.0)))
        y0 = float(y1 - line if y1 - line >= 0 else min(max(y1, 0.0), max(canvas_h - line, 0.0)))
        spot = None
        y = y0
        while y + line <= canvas_h and spot is None:
            if not any(_overlap((x, y, w, line), p) for p in placed):
                spot = (x, y, w, line)
            y += line
        placed.append(spot or (x, y0, w, line))  # no free line below: overlapping beats hiding it
    return placed


def draw_boxes(layer, model: EditorModel) -> tuple[list[dict], int]:
    """Draw the boxes of the current frame on ``layer`` (the selected one with its handles; the settled part
    of a running analysis dashed white). Returns what was drawn, for ``Workbench.drawn``: one dict per box,
    and the number of provisional boxes."""
    m, vp = model, model.viewport
    drawn = []
    boxes = m.boxes()  # the selected one last: its outline is drawn on top
    rects = [vp.box_to_canvas(b.box) for b in boxes]
    texts = [f"{b.track} {b.label}" + (" ◆" if b.keyframe else "") + (" (unmasked)" if b.excluded else "")
             for b in boxes]
    order = sorted(range(len(boxes)), key=lambda i: not boxes[i].selected)  # its label placed first
    spots = place_labels([rects[i] for i in order], [label_width(texts[i]) for i in order], vp.canvas_w,
                         vp.canvas_h)
    label_at = dict(zip(order, spots))
    with hold_canvas():
        layer.clear()
        layer.font = LABEL_FONT
        for i, b in enumerate(boxes):
            x1, y1, x2, y2 = rects[i]
            layer.stroke_style = b.color
            layer.line_width = 3 if b.selected else 2
            layer.set_line_dash([6, 4] if b.excluded else [])
            layer.stroke_rect(x1, y1, x2 - x1, y2 - y1)
            if b.selected:
                layer.set_line_dash([])
                layer.fill_style = b.color
                for hx, hy in handle_points((x1, y1, x2, y2)).values():
                    layer.fill_rect(hx - 3, hy - 3, 7, 7)
            drawn.append({"track": b.track, "canvas": (x1, y1, x2, y2), "color": b.color,
                          "selected": b.selected, "excluded": b.excluded, "label": label_at[i]})
        # labels after every outline (one drawn later crossed an earlier label), as a tag in the track's colour:
        # purple, blue or teal text straight on the masked picture could not be read
        layer.set_line_dash([])
        for i, b in enumerate(boxes):
            lx, ly, lw, lh = label_at[i]
            layer.fill_style = b.color
            layer.fill_rect(lx, ly, lw, lh)
            layer.fill_style = _ink_on(b.color)
            layer.fill_text(texts[i], lx + 2, ly + lh - 4)
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


#: What an edit uncovered of a found box, in review thumbnails (BGR red).
UNCOVERED_BGR = (0, 0, 230)


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
        # a found box the analyst moved or shrank off part of itself: outlined in red and in the crop, so the card
        # shows what the edit uncovered (a careless drag's card showed only the wall the box was moved to)
        gone = self.case.uncovered_box(track, frame) if v is not None else None
        key = (frame, track, None if v is None else tuple(round(c, 1) for c in v[:4]), gone, masked, size)
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
            if gone is not None:
                g = (gone[0] * fit.sx + ox, gone[1] * fit.sy + oy, gone[2] * fit.sx + ox, gone[3] * fit.sy + oy)
                x1, y1, x2, y2 = min(x1, g[0]), min(y1, g[1]), max(x2, g[2]), max(y2, g[3])
                # thick enough to survive the shrink to a thumbnail (about a pixel there), thin enough to leave
                # the face inside it visible
                line = max(2, min(round(1.6 * max(x2 - x1, y2 - y1) / size),
                                  round(min(g[2] - g[0], g[3] - g[1]) / 8)))
                cv2.rectangle(pic, (int(g[0]), int(g[1])), (int(g[2]), int(g[3])), UNCOVERED_BGR, line)
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
