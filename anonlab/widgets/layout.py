"""The workbench's page layout: sizes, the CSS, and the small HTML helpers the view uses.

The workbench is laid out for a 1366×768 laptop screen (about 1366×650 of page):
the picture fits `MAX_CANVAS`, the side column is `SIDE_WIDTH`
wide, and `canvas_size_for` / `layout_width` give the sizes the view builds with. These are numbers and
strings without widgets (and the record panel's line on an earlier export), kept apart from
`anonlab.widgets.workbench` so the layout rules can be read (and tested: ``test_widgets_view``) on their own.
"""

from __future__ import annotations

import html
from pathlib import Path

from anonlab.report.audit import earlier_export

#: The canvas fits in this box (pixels); the image keeps its aspect ratio. With the side panel
#: (`SIDE_WIDTH`) it fits a 1366-px-wide window.
MAX_CANVAS = (832, 468)
#: The canvas is at least this tall, pixels (less only in a box lower than this): a panorama photo (3000×200) fit
#: to the width was drawn 832×55, the labels of the boxes at its top covered the faces and a zoom had 55 px of
#: height to fill. Letterboxed in a taller canvas, its labels sit in the band above it and a zoom fills the canvas.
MIN_CANVAS_H = 234
#: The player column (picture, transport, messages) is at least this wide, pixels: beside a portrait phone clip's
#: 263-px picture the step buttons were cut to "-1", "+:" and the frame label broke over three lines, and the
#: status strip above wrapped and pushed the player's last row below a 768-px screen.
MIN_PLAYER = 560
#: A photo has no transport: its player column only needs the view row (masked, undo, redo, zoom: about 300 px),
#: so a portrait photo's picture sits next to the side column instead of before a blank gap of up to 300 px.
MIN_PHOTO_PLAYER = 310
#: Width of the side column (review card, track tools), pixels.
SIDE_WIDTH = 470
#: Gap between the picture and the side column, and the page margin the layout leaves, pixels.
GAP = 12
#: A small picture (a photo of 400×226, a 640×360 clip) is enlarged up to this factor to fill the view.
MAX_UPSCALE = 2.0
#: Rows shown in the track list (the longest tracks first beyond that).
MAX_TRACK_ROWS = 150
#: Height of one track-list row, pixels (rows never shrink: the list scrolls).
ROW_PX = 30
#: Side of a track-list thumbnail, pixels.
THUMB = 26

#: The page's CSS. ipywidgets 8 gives every box ``overflow: auto``, and a child as wide as its box plus the 2-px
#: widget margins overflows it by 4 px: every column and panel grew a horizontal scroll bar (15 px tall where a
#: browser shows classic scroll bars; headless Playwright hides them) that pushed the player and the AUDIO box
#: below a 768-px screen. Boxes let their content show; the track list and the review text scroll all the
#: same, their ``overflow`` being set on the widget itself (an inline style wins over this sheet).
CSS = f"""<style>
.anonlab-workbench .anonlab-msg {{ white-space: normal; overflow-wrap: anywhere; line-height: 1.25; }}
.anonlab-workbench .anonlab-msg .err {{ color: #b00020; }}
.anonlab-workbench .anonlab-row {{ flex: 0 0 auto; height: {ROW_PX}px; min-height: {ROW_PX}px; }}
.anonlab-workbench .anonlab-row .widget-html-content {{ white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }}
.anonlab-workbench .widget-html-content {{ line-height: 1.25; }}
.anonlab-workbench .anonlab-side .widget-button {{ padding: 0 6px; }}
.anonlab-workbench.widget-box, .anonlab-workbench .widget-box {{ overflow: visible; }}
</style>"""


def canvas_size_for(width: int, height: int, box: tuple[int, int] = MAX_CANVAS,
                    max_upscale: float = MAX_UPSCALE) -> tuple[int, int]:
    """Canvas size, pixels, showing a ``width``×``height`` picture fit into ``box`` (enlarged up to ``max_upscale``);
    at least `MIN_CANVAS_H` tall (or ``box``'s height), a very wide picture letterboxed."""
    s = min(box[0] / width, box[1] / height, max_upscale)
    return max(1, round(width * s)), max(1, round(height * s), min(MIN_CANVAS_H, box[1]))


def player_width(canvas_w: int, video: bool = True) -> int:
    """Width of the player column, pixels: the canvas, or beside a narrow (portrait) picture `MIN_PLAYER` for a
    video (its transport) and `MIN_PHOTO_PLAYER` for a photo."""
    return max(int(canvas_w), MIN_PLAYER if video else MIN_PHOTO_PLAYER)


def layout_width(canvas_w: int) -> int:
    """Width the workbench takes on the page at most, pixels (a video's player column, the gap, the side column,
    margins). A photo's narrower player column leaves the room to the status strip above, which would wrap to
    three lines in less and push the picture down."""
    return player_width(canvas_w) + GAP + SIDE_WIDTH + 2 * GAP


def fmt_time(t: float) -> str:
    """Seconds as ``m:ss.ss`` (the frame label under the picture)."""
    m, s = divmod(max(t, 0.0), 60)
    return f"{int(m)}:{s:05.2f}"


def msg_html(text: str, error: bool = False) -> str:
    """A message as HTML: errors in red; long ones wrap (they never push the layout sideways)."""
    if not text:
        return ""
    return f"<span class='{'err' if error else 'ok'}'>{html.escape(text)}</span>"


def earlier_export_html(output: Path, case) -> str:
    """The record panel's line on an export made before this window opened (`earlier_export`: the report beside
    ``output``, made from this case's input): after a restart the panel said "not exported yet" beside an output
    on disk made with fewer edits than the case now holds."""
    ex = earlier_export(output, case.input.sha256)
    if ex is None:
        return "<br>not exported yet"
    now = case.edit_count
    return (f"<br>earlier export <code>{html.escape(output.name)}</code> (report of {html.escape(ex['created'])}, "
            f"status {html.escape(ex['status'])}): {ex['frames']} frame(s), {ex['regions']} masked region(s), "
            f"{ex['edits']} edit(s)" + (f"; the case has {now} now: export again to publish them"
                                       if now != ex["edits"] else ""))
