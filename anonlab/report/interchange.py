"""Per-frame regions to and from MOT-style CSV and CVAT "for video 1.1" XML.

So an analyst can correct tracks in CVAT (or in a spreadsheet / script) and re-render in anonlab:
``write_cvat_xml(analysis.regions, "tracks.xml", n_frames=...)`` -> upload as "CVAT 1.1" annotations in a
CVAT video task -> correct -> export "CVAT for video 1.1" -> ``read_cvat_xml(path)`` -> render.

These files hold coordinates: like the case file and ``--regions-out``, they are personal data and are
written only when the user asks for them.

**MOT CSV** (``write_mot_csv`` / ``read_mot_csv``), one row per region, with a header row::

    frame,id,x,y,w,h,score,label,source
    1,3,100.00,50.00,40.00,48.00,0.9100,face,detector

- ``frame`` is **1-based** as in MOTChallenge (anonlab's frame 0 is written as 1);
- ``id`` is the track id, ``-1`` for a region without a track (MOT's convention for detections);
- ``x, y`` the top-left corner, ``w, h`` the size, in pixels of the displayed image, **0-based** (anonlab's
  convention; MOTChallenge ground truth counts pixels from 1, which shifts boxes by one pixel: well inside
  the mask padding, and not corrected here);
- ``score`` in [0, 1]; ``label`` one of ``face``/``plate``; ``source`` one of anonlab's `SOURCES`;
- ``turn`` (a tenth column, written only when a region has one): the quarter turns that stand the region's
  content upright (`Regions.turn`: a face found upside down is masked towards its own chin); 0 when absent.

The reader also takes plain MOTChallenge files (7 or 10 numeric columns ``frame,id,x,y,w,h,conf[,x,y,z]``,
with or without header): those rows get ``default_label`` and ``default_source``.

**CVAT for video 1.1 XML** (``write_cvat_xml`` / ``read_cvat_xml``)::

    <annotations><version>1.1</version><meta>...</meta>
      <track id="0" label="face" source="auto">
        <box frame="0" outside="0" occluded="0" keyframe="1" xtl="100.00" ytl="50.00" xbr="140.00" ybr="98.00">
          <attribute name="score">0.9100</attribute><attribute name="source">detector</attribute>
        </box>
        <box frame="1" outside="1" .../>        <!-- the track ends after frame 0 -->
      </track>
    </annotations>

CVAT frames are 0-based, like anonlab's, and are the video's own frame numbers (CVAT writes absolute
numbers even for a task with a start frame or a frame step). The reader follows CVAT's own semantics (its
importer and its interpolation): only ``keyframe="1"`` boxes are read (CVAT recomputes the others); between two visible
keyframes a box is interpolated linearly (``source=interpolated``); before an ``outside="1"`` keyframe the
previous box is held unchanged, and from it the track is absent until its next keyframe; a track whose last
keyframe is visible continues, holding that box, to the end of the video (``source=extended``). Each box's
anonlab ``score`` and ``source`` travel as CVAT attributes, and ``turn`` (`Regions.turn`, 0-3) where it is not 0;
CVAT keeps them where the task's labels define them (the ``<meta>`` written here does) and drops them silently
otherwise, so a keyframe without a ``source`` attribute is read as ``analyst`` (a person placed or confirmed it)
with score 1, and one without ``turn`` as upright. Rows between keyframes take the turn of the keyframe before.

The writer marks every row a keyframe except ``interpolated`` rows that lie exactly (to 0.01 px) on the
line between their neighbouring keyframes, so CVAT shows real detections as keyframes and re-interpolates
the rest, and reading the file back gives the same regions up to the 2-decimal rounding. Regions without a
track become one-frame tracks and come back with new track ids. A rotated CVAT box comes back as the
upright box that encloses it (the mask covers at least what the analyst drew).

XML safety: `defusedxml` is used when installed (it ships with the ``[jupyter]`` extra); otherwise the
standard library parser, which never fetches external entities and, with the bundled expat >= 2.4,
limits entity expansion. In both cases a document with a DTD or entity declarations is refused before
parsing: CVAT never writes one. Errors name the file, track and frame, never a coordinate value.
"""

from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np

from anonlab.errors import AnonlabError, FileTooLargeError
from anonlab.media import read_bytes_bounded, write_text_atomic
from anonlab.regions import (
    ANALYST,
    EXTENDED,
    INTERPOLATED,
    LABELS,
    NO_TRACK,
    SOURCES,
    Regions,
    label_code,
    source_code,
)

__all__ = ["MOT_COLUMNS", "MOT_TURN", "read_cvat_xml", "read_mot_csv", "write_cvat_xml", "write_mot_csv"]

MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "score", "label", "source")
#: The optional tenth column of anonlab's MOT CSV (`Regions.turn`), written only when a region has a turn.
MOT_TURN = "turn"
_TOL_PX = 0.011  # a row "lies on the line" when within this of the interpolation (values carry 2 decimals)
_TOL_SCORE = 1.1e-4  # scores carry 4 decimals
_MAX_BYTES = 1 << 30  # an annotation file larger than 1 GiB is refused rather than read into memory


# --- shared -----------------------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    try:
        return read_bytes_bounded(path, _MAX_BYTES)
    except FileTooLargeError:
        raise AnonlabError(f"{path.name} is larger than 1 GiB; is it really an annotation file?") from None
    except FileNotFoundError:
        raise AnonlabError(f"{path.name} not found") from None
    except IsADirectoryError:
        raise AnonlabError(f"{path.name} is a folder, not a file") from None
    except OSError as exc:
        raise AnonlabError(f"cannot read {path.name}: {exc.strerror or exc}") from None


def _finite(text, what: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise AnonlabError(f"{what} is not a number") from None
    if not math.isfinite(v):
        raise AnonlabError(f"{what} is not a finite number")
    return v


def _turn(text, what: str) -> int:
    """A quarter-turn count 0-3 (`Regions.turn`)."""
    if text not in ("0", "1", "2", "3"):
        raise AnonlabError(f"{what} must be 0, 1, 2 or 3 (quarter turns)")
    return int(text)


def _score(text, what: str) -> float:
    v = _finite(text, what)
    if not 0.0 <= v <= 1.0:
        raise AnonlabError(f"{what} must lie between 0 and 1")
    return v


# --- MOT CSV ----------------------------------------------------------------------------------------
def write_mot_csv(regions: Regions, path) -> Path:
    """Write ``regions`` (any number of frames) as MOT-style CSV (module docstring), sorted by frame, id.

    Rows of one (frame, id) keep their order in ``regions``, and `read_mot_csv` keeps the file's order, so
    a round trip gives ``regions`` sorted stably by (frame, id), up to the 2-decimal rounding.

    Example:
        >>> import tempfile, pathlib
        >>> r = Regions(xyxy=[[10, 20, 50, 80]], score=[0.9], track_id=[3], frame=[0])
        >>> p = write_mot_csv(r, pathlib.Path(tempfile.mkdtemp()) / "r.csv")
        >>> p.read_text().splitlines()[1]
        '1,3,10.00,20.00,40.00,60.00,0.9000,face,detector'
        >>> read_mot_csv(p) == r
        True
    """
    path = Path(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    turned = bool(regions.turn.any())  # upright files keep their nine columns
    w.writerow([*MOT_COLUMNS, MOT_TURN] if turned else MOT_COLUMNS)
    order = np.lexsort((regions.track_id, regions.frame))  # stable: ties keep their input order
    xywh = regions.xywh
    for i in order.tolist():
        x, y, ww, hh = xywh[i].tolist()
        w.writerow([int(regions.frame[i]) + 1, int(regions.track_id[i]), f"{x:.2f}", f"{y:.2f}", f"{ww:.2f}",
                    f"{hh:.2f}", f"{float(regions.score[i]):.4f}", LABELS[regions.label[i]],
                    SOURCES[regions.source[i]], *([int(regions.turn[i])] if turned else [])])
    write_text_atomic(path, buf.getvalue())
    return path


def read_mot_csv(path, *, default_label: str = "face", default_source: str = "detector") -> Regions:
    """Read a MOT-style CSV written by `write_mot_csv` (or a plain MOTChallenge file) into `Regions`.

    Strict: every row must have 9 columns (7 or 10 for plain MOTChallenge), a whole frame number from 1, a
    whole track id from -1, finite coordinates with ``w, h >= 0``, a score in [0, 1], a known label and
    source. Blank lines are skipped. Any other content raises `AnonlabError` naming the line. Rows come
    back in the file's order.

    Args:
        path: the CSV file.
        default_label, default_source: for plain MOTChallenge rows, which carry neither.
    """
    path = Path(path)
    label_default, source_default = label_code(default_label), source_code(default_source)
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AnonlabError(f"{path.name} is not a UTF-8 text file") from None
    rows = {k: [] for k in ("frame", "track_id", "xywh", "score", "label", "source", "turn")}
    with_turn = False  # the header names the turn column: ten cells are anonlab's, not MOTChallenge's
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        cells = [c.strip() for c in row]
        if lineno == 1 and cells[0].lower() == "frame":
            header = [c.lower() for c in cells]
            if header not in (list(MOT_COLUMNS), [*MOT_COLUMNS, MOT_TURN], list(MOT_COLUMNS[:7])):
                raise AnonlabError(f"{path.name} line 1: unexpected header; expected {','.join(MOT_COLUMNS)}")
            with_turn = header[-1] == MOT_TURN
            continue
        where = f"{path.name} line {lineno}"
        if len(cells) not in (7, 9, 10):
            raise AnonlabError(f"{where}: {len(cells)} columns; expected 9 ({','.join(MOT_COLUMNS)}) or MOT's 7/10")
        if with_turn and len(cells) != 10:
            raise AnonlabError(f"{where}: {len(cells)} columns; the header names 10")
        try:
            frame = int(cells[0])
            tid = int(cells[1])
        except ValueError:
            raise AnonlabError(f"{where}: frame and id must be whole numbers") from None
        if frame < 1:
            raise AnonlabError(f"{where}: frame numbers start at 1 (MOT frames are 1-based)")
        if tid < NO_TRACK:
            raise AnonlabError(f"{where}: id must be -1 (no track) or more")
        x, y, w, h = (_finite(cells[2 + k], f"{where}: column {MOT_COLUMNS[2 + k]}") for k in range(4))
        if w < 0 or h < 0:
            raise AnonlabError(f"{where}: w and h must not be negative")
        score = _score(cells[6], f"{where}: score")
        turn = 0
        if len(cells) == 9 or with_turn:
            try:
                lab, src = label_code(cells[7]), source_code(cells[8])
            except AnonlabError as exc:
                raise AnonlabError(f"{where}: {exc}") from None
            if with_turn:
                turn = _turn(cells[9], f"{where}: turn")
        else:
            lab, src = label_default, source_default
        rows["frame"].append(frame - 1)
        rows["track_id"].append(tid)
        rows["xywh"].append((x, y, w, h))
        rows["score"].append(score)
        rows["label"].append(lab)
        rows["source"].append(src)
        rows["turn"].append(turn)
    if not rows["frame"]:
        return Regions.empty()
    return Regions.from_xywh(rows.pop("xywh"), **rows)


# --- CVAT for video 1.1 -----------------------------------------------------------------------------
def _segments(frames: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of runs of consecutive frames (``frames`` sorted, unique)."""
    breaks = np.nonzero(np.diff(frames) != 1)[0] + 1
    edges = [0, *breaks.tolist(), len(frames)]
    return list(zip(edges[:-1], edges[1:]))


def _keyframes(xyxy: np.ndarray, score: np.ndarray, source: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """Which rows of one consecutive segment must be CVAT keyframes (see the module docstring)."""
    n = len(xyxy)
    key = np.ones(n, bool)
    if n < 3:
        return key
    key[1:-1] = (source[1:-1] != INTERPOLATED) | (turn[1:-1] != turn[:-2])  # a new turn starts at a keyframe
    r = np.round(xyxy.astype(np.float64), 2)
    s = np.round(score.astype(np.float64), 4)
    i = 0
    while i < n - 1:
        j = i + 1
        while not key[j]:
            j += 1
        if j > i + 1:  # rows i+1 .. j-1 would be re-interpolated between keyframes i and j
            t = (np.arange(i + 1, j) - i)[:, None] / (j - i)
            ok = (np.abs(r[i] + (r[j] - r[i]) * t - r[i + 1 : j]).max() <= _TOL_PX
                  and np.abs(s[i] + (s[j] - s[i]) * t[:, 0] - s[i + 1 : j]).max() <= _TOL_SCORE)
            if not ok:
                key[i + 1 : j] = True
        i = j
    return key


def _meta(n_frames: int, width: int | None, height: int | None, name: str | None) -> ET.Element:
    meta = ET.Element("meta")
    task = ET.SubElement(meta, "task")
    for tag, value in (("name", name or "anonlab"), ("size", n_frames), ("mode", "interpolation"),
                       ("start_frame", 0), ("stop_frame", max(n_frames - 1, 0))):
        ET.SubElement(task, tag).text = str(value)
    labels = ET.SubElement(task, "labels")
    for lab in LABELS:
        el = ET.SubElement(labels, "label")
        ET.SubElement(el, "name").text = lab
        ET.SubElement(el, "type").text = "rectangle"
        attrs = ET.SubElement(el, "attributes")
        for aname, itype, default, values in (("score", "text", "1", ""),
                                              ("source", "select", "analyst", "\n".join(SOURCES)),
                                              ("turn", "select", "0", "0\n1\n2\n3")):
            a = ET.SubElement(attrs, "attribute")
            for tag, value in (("name", aname), ("mutable", "True"), ("input_type", itype),
                               ("default_value", default), ("values", values)):
                ET.SubElement(a, tag).text = value
    if width and height:
        size = ET.SubElement(task, "original_size")
        ET.SubElement(size, "width").text = str(int(width))
        ET.SubElement(size, "height").text = str(int(height))
    return meta


def _box(track: ET.Element, frame: int, xyxy, *, outside: bool, keyframe: bool, score=None, source=None,
         turn: int = 0) -> None:
    el = ET.SubElement(track, "box", {
        "frame": str(int(frame)), "outside": str(int(outside)), "occluded": "0", "keyframe": str(int(keyframe)),
        "xtl": f"{xyxy[0]:.2f}", "ytl": f"{xyxy[1]:.2f}", "xbr": f"{xyxy[2]:.2f}", "ybr": f"{xyxy[3]:.2f}",
        "z_order": "0",
    })
    if score is not None:
        ET.SubElement(el, "attribute", {"name": "score"}).text = f"{float(score):.4f}"
        ET.SubElement(el, "attribute", {"name": "source"}).text = SOURCES[int(source)]
        if turn:
            ET.SubElement(el, "attribute", {"name": "turn"}).text = str(int(turn))


def write_cvat_xml(regions: Regions, path, *, n_frames: int | None = None, width: int | None = None,
                   height: int | None = None, name: str | None = None) -> Path:
    """Write ``regions`` as a CVAT "for video 1.1" annotation file (module docstring).

    Args:
        regions: all frames' regions (``frame`` 0-based).
        path: the ``.xml`` file to write.
        n_frames: frames in the video; tracks reaching the last frame get no ``outside`` box (CVAT would
            otherwise need a frame past the end). Default: last frame with a region + 1.
        width, height: the video's displayed size, recorded in ``<meta>`` as CVAT does.
        name: task name recorded in ``<meta>`` (e.g. the video's base name).

    Raises:
        AnonlabError: a track with two boxes in one frame, or regions past ``n_frames``.
    """
    path = Path(path)
    last = int(regions.frame.max()) + 1 if len(regions) else 0
    n_frames = last if n_frames is None else int(n_frames)
    if last > n_frames:
        raise AnonlabError(f"regions reach frame {last - 1} but the video has {n_frames} frames")
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    root.append(_meta(n_frames, width, height, name))

    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    untracked = []
    for i, (tid, lab) in enumerate(zip(regions.track_id.tolist(), regions.label.tolist())):
        (untracked.append(i) if tid == NO_TRACK else groups[(tid, lab)].append(i))
    used = {tid for tid, _ in groups}
    next_id = max(used, default=-1) + 1
    written: set[int] = set()
    tracks: list[tuple[int, int, np.ndarray]] = []
    for (tid, lab), rows in sorted(groups.items()):
        if tid in written:  # one anonlab track id holding two labels: the second gets a fresh CVAT id
            tid, next_id = next_id, next_id + 1
        written.add(tid)
        tracks.append((tid, lab, np.asarray(rows)))
    for i in untracked:
        tracks.append((next_id, int(regions.label[i]), np.asarray([i])))
        next_id += 1

    for tid, lab, rows in tracks:
        rows = rows[np.argsort(regions.frame[rows], kind="stable")]
        frames = regions.frame[rows]
        if len(frames) > 1 and (np.diff(frames) == 0).any():
            raise AnonlabError(f"track {tid} has two boxes in one frame; split it before export")
        srcs = regions.source[rows]
        kind = "manual" if (srcs == ANALYST).all() else "semi-auto" if (srcs == ANALYST).any() else "auto"
        track = ET.SubElement(root, "track", {"id": str(tid), "label": LABELS[lab], "source": kind})
        for a, b in _segments(frames):
            seg = rows[a:b]
            key = _keyframes(regions.xyxy[seg], regions.score[seg], regions.source[seg], regions.turn[seg])
            for k, i in enumerate(seg.tolist()):
                _box(track, regions.frame[i], regions.xyxy[i].tolist(), outside=False, keyframe=bool(key[k]),
                     score=regions.score[i], source=regions.source[i], turn=int(regions.turn[i]))
            end = int(regions.frame[seg[-1]]) + 1
            if end < n_frames:
                _box(track, end, regions.xyxy[seg[-1]].tolist(), outside=True, keyframe=True)
    ET.indent(root)
    text = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    write_text_atomic(path, text)
    return path


def _parse_xml(path: Path) -> ET.Element:
    data = _read_bytes(path)
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise AnonlabError(f"{path.name}: XML with a DTD or entity declarations is refused (CVAT never writes one)")
    try:
        try:
            from defusedxml.ElementTree import fromstring  # type: ignore[import-not-found]
        except ImportError:
            fromstring = ET.fromstring
        return fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else "?"
        raise AnonlabError(f"{path.name} is not well-formed XML (line {line})") from None
    except Exception as exc:  # defusedxml's DTDForbidden / EntitiesForbidden and the like
        raise AnonlabError(f"{path.name}: unsafe or unreadable XML ({type(exc).__name__})") from None


def _n_frames_from_meta(root: ET.Element) -> int | None:
    for scope in ("task", "job", "project/tasks/task"):
        el = root.find(f"meta/{scope}")
        if el is None:
            continue
        for tag, plus in (("size", 0), ("stop_frame", 1)):
            text = el.findtext(tag)
            if text is not None and text.strip().isdigit():
                return int(text) + plus
    return None


def _flag(el: ET.Element, name: str, default: str | None, where: str) -> bool:
    value = el.get(name, default)
    if value not in ("0", "1"):
        raise AnonlabError(f"{where}: {name} must be 0 or 1")
    return value == "1"


def _read_box(el: ET.Element, where: str) -> dict:
    try:
        frame = int(el.get("frame", ""))
    except ValueError:
        raise AnonlabError(f"{where}: box without a whole frame number") from None
    where = f"{where}, frame {frame}"
    if frame < 0:
        raise AnonlabError(f"{where}: frame numbers start at 0")
    xtl, ytl, xbr, ybr = (_finite(el.get(k), f"{where}: {k}") for k in ("xtl", "ytl", "xbr", "ybr"))
    if xbr < xtl or ybr < ytl:
        raise AnonlabError(f"{where}: xbr/ybr must not be left of / above xtl/ytl")
    rot = _finite(el.get("rotation", "0"), f"{where}: rotation")
    if rot % 360:
        # The upright box enclosing the rotated one (rotation is clockwise about the centre, in degrees).
        cx, cy, hw, hh = (xtl + xbr) / 2, (ytl + ybr) / 2, (xbr - xtl) / 2, (ybr - ytl) / 2
        c, s = abs(math.cos(math.radians(rot))), abs(math.sin(math.radians(rot)))
        ew, eh = hw * c + hh * s, hw * s + hh * c
        xtl, ytl, xbr, ybr = cx - ew, cy - eh, cx + ew, cy + eh
    attrs = {}
    for a in el.findall("attribute"):
        attrs[a.get("name")] = (a.text or "").strip()
    score, source = 1.0, ANALYST
    if attrs.get("score"):
        score = _score(attrs["score"], f"{where}: score attribute")
    if attrs.get("source"):
        try:
            source = source_code(attrs["source"])
        except AnonlabError as exc:
            raise AnonlabError(f"{where}: {exc}") from None
    turn = _turn(attrs["turn"], f"{where}: turn attribute") if attrs.get("turn") else 0
    return {
        "frame": frame, "xyxy": (xtl, ytl, xbr, ybr), "score": score, "source": source, "turn": turn,
        "outside": _flag(el, "outside", None, where), "keyframe": _flag(el, "keyframe", "1", where),
    }


_SHAPES = ("polygon", "polyline", "points", "cuboid", "ellipse", "mask", "skeleton")


def read_cvat_xml(path, *, n_frames: int | None = None) -> Regions:
    """Read a CVAT "for video 1.1" XML into `Regions`, interpolated as CVAT does (module docstring).

    Args:
        path: the ``annotations.xml`` exported by CVAT (unzip the export first) or by `write_cvat_xml`.
        n_frames: frames in the video: tracks whose last keyframe is visible are held to its end. Default:
            the task size in ``<meta>``, else the last frame mentioned in the file + 1. Rows past the end
            are dropped.

    Raises:
        AnonlabError: not CVAT-for-video XML, an unknown label, a shape other than a box, a malformed box.

    Example:
        >>> import tempfile, pathlib
        >>> r = Regions(xyxy=[[0, 0, 10, 10], [10, 0, 20, 10]], track_id=[1, 1], frame=[0, 4])
        >>> back = read_cvat_xml(write_cvat_xml(r, pathlib.Path(tempfile.mkdtemp()) / "t.xml"))
        >>> back.frame.tolist(), back.xyxy[1].tolist(), back.source_names.tolist()
        ([0, 4], [10.0, 0.0, 20.0, 10.0], ['detector', 'detector'])
    """
    path = Path(path)
    root = _parse_xml(path)
    if root.tag != "annotations":
        raise AnonlabError(f"{path.name}: not a CVAT annotation file (root element is <{root.tag}>)")
    version = (root.findtext("version") or "1.1").strip()
    if not version.startswith("1."):
        raise AnonlabError(f"{path.name}: CVAT XML version {version} is not supported (expected 1.x)")
    if n_frames is None:
        n_frames = _n_frames_from_meta(root)

    tracks = []
    seen_ids = set()
    for child in root:
        if child.tag in ("version", "meta", "tag"):
            continue
        if child.tag == "image":
            raise AnonlabError(f"{path.name} is 'CVAT for images' XML; export the task as 'CVAT for video 1.1'")
        if child.tag != "track":
            raise AnonlabError(f"{path.name}: unsupported element <{child.tag}>")
        try:
            tid = int(child.get("id", ""))
        except ValueError:
            raise AnonlabError(f"{path.name}: a track without a whole-number id") from None
        where = f"{path.name} track {tid}"
        if tid < 0 or tid in seen_ids:
            raise AnonlabError(f"{where}: track ids must be unique and not negative")
        seen_ids.add(tid)
        try:
            lab = label_code(child.get("label", ""))
        except AnonlabError as exc:
            raise AnonlabError(f"{where}: {exc}") from None
        boxes = []
        for el in child:
            if el.tag in _SHAPES:
                raise AnonlabError(f"{where}: only boxes are supported, found <{el.tag}>")
            if el.tag != "box":
                raise AnonlabError(f"{where}: unsupported element <{el.tag}>")
            b = _read_box(el, where)
            if b["keyframe"]:  # CVAT reads keyframes only and interpolates the rest itself
                boxes.append(b)
        boxes.sort(key=lambda b: b["frame"])
        if any(p["frame"] == q["frame"] for p, q in zip(boxes, boxes[1:])):
            raise AnonlabError(f"{where}: two keyframes in one frame")
        tracks.append((tid, lab, boxes))

    if n_frames is None:
        n_frames = max((b["frame"] + 1 for _, _, bs in tracks for b in bs), default=0)

    cols = {k: [] for k in ("frame", "xyxy", "score", "source", "track_id", "label", "turn")}

    def emit(frame, xyxy, score, source, tid, lab, turn):
        cols["turn"].append(turn)
        cols["frame"].append(frame)
        cols["xyxy"].append(xyxy)
        cols["score"].append(score)
        cols["source"].append(source)
        cols["track_id"].append(tid)
        cols["label"].append(lab)

    for tid, lab, boxes in tracks:
        for k, b in enumerate(boxes):
            if b["outside"]:
                continue
            emit(b["frame"], b["xyxy"], b["score"], b["source"], tid, lab, b["turn"])
            nxt = boxes[k + 1] if k + 1 < len(boxes) else None
            stop = nxt["frame"] if nxt is not None else n_frames
            gap = np.arange(b["frame"] + 1, stop)
            if not len(gap):
                continue
            if nxt is not None and not nxt["outside"]:
                t = ((gap - b["frame"]) / (nxt["frame"] - b["frame"]))[:, None]
                a0, a1 = np.asarray(b["xyxy"]), np.asarray(nxt["xyxy"])
                xyxy = a0 + (a1 - a0) * t
                score = b["score"] + (nxt["score"] - b["score"]) * t[:, 0]
                src = INTERPOLATED
            else:  # held before an outside keyframe, or to the end of the video
                xyxy = np.tile(b["xyxy"], (len(gap), 1))
                score = np.full(len(gap), b["score"])
                src = EXTENDED
            for f, box, s in zip(gap.tolist(), xyxy.tolist(), score.tolist()):
                emit(f, box, s, src, tid, lab, b["turn"])
    if not cols["frame"]:
        return Regions.empty()
    out = Regions(**{k: np.asarray(v) for k, v in cols.items()})
    out = out[out.frame < n_frames]
    return out[np.lexsort((out.track_id, out.frame))]
