"""Generated pictures of text with exact line boxes: documents, name badges and screens.

Text in footage is personal when it names someone (a badge, a form, a chat on a screen), and no labelled set
of such pictures can be redistributed with the project. These scenes are drawn here instead, with Pillow's
bundled scalable font (no system font needed, so tests and benchmarks run on a bare machine): a **document**
(a page of paragraphs at an angle of a few degrees on a desk), a **badge** (a small card with a name and a
role, turned up to 12°, on a textured background) and a **screen** (light text on a dark window). Every line
is one true box: the axis-aligned box of the line's ink after the turn, in picture pixels. Words come from a
fixed list of made-up names and plain words, so nothing real is shown.

`text_coverage` scores boxes the way masking needs: the share of each true line covered by the union of the
predicted boxes, not an IoU (one box over a whole paragraph covers every line in it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

KINDS = ("document", "badge", "screen")

_WORDS = ("report meeting address phone number date account invoice total payment customer order street city "
          "project status review signed name email office floor room visitor access level department manager "
          "notes schedule contract reference amount balance delivery").split()
_NAMES = ("Ada Lindqvist", "Omar Haddad", "Mei Tanaka", "Jon Okafor", "Lena Brandt", "Ravi Menon", "Sara Costa",
          "Ivo Petrov", "Nora Walsh", "Tomas Ruiz")
_ROLES = ("Visitor", "Engineering", "Front desk", "Security", "Press", "Staff", "Contractor")


@dataclass
class TextScene:
    """A generated picture and its text lines.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR.
        boxes: ``(N, 4)`` float32 xyxy, one per line of text, picture pixels.
        heights: ``(N,)`` float32 letter height of each line (the font size), pixels.
        kind: one of `KINDS`.
    """

    image: np.ndarray
    boxes: np.ndarray
    heights: np.ndarray
    kind: str


def _font(size: int):
    return ImageFont.load_default(size=int(size))


def _sentence(rng, n: int) -> str:
    return " ".join(rng.choice(_WORDS, n))


def _background(rng, w: int, h: int) -> np.ndarray:
    """A muted, textured backdrop (a desk, a wall): smooth noise, no text-like strokes."""
    base = rng.uniform(60, 170, 3)
    noise = cv2.resize(rng.normal(0, 18, (max(2, h // 40), max(2, w // 40), 3)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _card(lines: list[tuple[str, int]], fg, bg, pad: int) -> tuple[np.ndarray, list[tuple[float, ...]], list[int]]:
    """Draw ``lines`` (text, size) on a card; returns the card (RGB), each line's ink box and size."""
    fonts = [_font(s) for _, s in lines]
    bbs = [f.getbbox(t) for (t, _), f in zip(lines, fonts)]
    width = max(b[2] - b[0] for b in bbs) + 2 * pad
    height = sum(int(s * 1.5) for _, s in lines) + 2 * pad
    card = Image.new("RGB", (int(width), int(height)), tuple(int(c) for c in bg))
    draw = ImageDraw.Draw(card)
    y, boxes, sizes = pad, [], []
    for (text, size), font, bb in zip(lines, fonts, bbs):
        draw.text((pad - bb[0], y), text, font=font, fill=tuple(int(c) for c in fg))
        boxes.append((pad, y + bb[1], pad + bb[2] - bb[0], y + bb[3]))
        sizes.append(size)
        y += int(size * 1.5)
    return np.asarray(card), boxes, sizes


def _place(scene: np.ndarray, card_rgb: np.ndarray, boxes, x: int, y: int, angle: float):
    """Paste ``card_rgb`` turned by ``angle`` degrees with its top-left near (x, y); returns the boxes in the scene."""
    h, w = card_rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(w * cos + h * sin) + 2, int(w * sin + h * cos) + 2
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    bgr = cv2.cvtColor(card_rgb, cv2.COLOR_RGB2BGR)
    turned = cv2.warpAffine(bgr, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    alpha = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (nw, nh), flags=cv2.INTER_LINEAR)
    H, W = scene.shape[:2]
    x, y = int(np.clip(x, 0, W - nw)), int(np.clip(y, 0, H - nh))
    a = alpha[..., None].astype(np.float32) / 255.0
    roi = scene[y:y + nh, x:x + nw].astype(np.float32)
    scene[y:y + nh, x:x + nw] = (turned * a + roi * (1 - a)).astype(np.uint8)
    out = []
    for x1, y1, x2, y2 in boxes:
        pts = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]], np.float64) @ m.T
        out.append([pts[:, 0].min() + x, pts[:, 1].min() + y, pts[:, 0].max() + x, pts[:, 1].max() + y])
    return out


def make_text_scene(kind: str, seed: int, size: tuple[int, int] = (1280, 720)) -> TextScene:
    """One generated picture of ``kind`` (`KINDS`) at ``size`` = (width, height) pixels.

    Letter heights are drawn from each kind's range at this size, from barely legible to large: documents
    8-30 px, badges 7-26 px, screens 7-22 px (scaled with the picture's height relative to 720). The picture
    then goes through a camera (`degrade`): a little defocus, sensor noise and JPEG compression.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown text scene {kind!r}; expected one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    w, h = size
    k = h / 720.0
    scene = _background(rng, w, h)
    boxes: list = []
    sizes: list[int] = []
    if kind == "document":
        body = int(rng.uniform(8, 22) * k)
        lines = [(_sentence(rng, 3).title(), int(rng.uniform(16, 30) * k))]
        lines += [(_sentence(rng, int(rng.integers(4, 8))), body) for _ in range(int(rng.integers(6, 11)))]
        card, bx, sz = _card(lines, (20, 20, 30), rng.uniform(225, 252, 3), int(30 * k))
        boxes += _place(scene, card, bx, int(rng.uniform(0, w / 3)), int(rng.uniform(0, h / 6)), rng.uniform(-4, 4))
        sizes += sz
    elif kind == "badge":
        for _ in range(int(rng.integers(1, 4))):
            name = str(rng.choice(_NAMES))
            big = rng.uniform(9, 26)
            lines = [(name, int(big * k)), (str(rng.choice(_ROLES)), int(max(7.0, 0.7 * big) * k))]
            colour = rng.uniform(200, 255, 3)
            card, bx, sz = _card(lines, (15, 15, 15), colour, int(12 * k))
            boxes += _place(scene, card, bx, int(rng.uniform(0, w * 0.8)), int(rng.uniform(0, h * 0.8)),
                            rng.uniform(-12, 12))
            sizes += sz
    else:
        n = int(rng.integers(6, 12))
        lines = [(_sentence(rng, int(rng.integers(2, 6))).capitalize() + ": " + str(rng.choice(_NAMES)),
                  int(rng.uniform(7, 22) * k)) for _ in range(n)]
        card, bx, sz = _card(lines, (230, 235, 240), rng.uniform(20, 45, 3), int(20 * k))
        boxes += _place(scene, card, bx, int(rng.uniform(0, w / 3)), int(rng.uniform(0, h / 5)), 0.0)
        sizes += sz
    scene = degrade(scene, rng)
    return TextScene(scene, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(sizes, np.float32), kind)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a camera does to a picture: defocus (Gaussian, sigma 0-1.2 px), sensor noise (sigma 0-6 levels)
    and JPEG compression (quality 45-90). ``image`` is ``(H, W, 3)`` uint8 BGR; a new array is returned."""
    sigma = rng.uniform(0.0, 1.2)
    out = cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0.3 else image.copy()
    out = np.clip(out + rng.normal(0, rng.uniform(0, 6), out.shape), 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 91))])
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR)


def text_coverage(truth: np.ndarray, predicted: np.ndarray, width: int, height: int) -> np.ndarray:
    """Share of each true box covered by the union of the predicted boxes: ``(N,)`` in [0, 1].

    Args:
        truth: ``(N, 4)`` xyxy true boxes; predicted: ``(M, 4)`` xyxy boxes (e.g. the mask extents).
        width, height: the picture's size in pixels (boxes are clipped to it).
    """
    covered = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in np.asarray(predicted, np.float64).reshape(-1, 4):
        covered[max(0, int(np.floor(y1))):max(0, int(np.ceil(y2))), max(0, int(np.floor(x1))):max(0, int(np.ceil(x2)))] = True
    out = []
    for x1, y1, x2, y2 in np.asarray(truth, np.float64).reshape(-1, 4):
        a, b = max(0, int(round(y1))), min(height, int(round(y2)))
        c, d = max(0, int(round(x1))), min(width, int(round(x2)))
        out.append(float(covered[a:b, c:d].mean()) if b > a and d > c else 0.0)
    return np.asarray(out, np.float32)
