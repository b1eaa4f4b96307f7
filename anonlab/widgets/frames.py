"""The frames the workbench shows: exact full frames on demand, canvas-sized pictures from a cache or a proxy.

`FrameSource` answers "frame n as the canvas shows it" quickly while scrubbing: first from an LRU of
canvas-sized pictures, then from a low-resolution JPEG proxy decoded once in a background thread, and only
then by an exact decode (a seek plus up to a GOP at 1080p). The proxy lives in a private unlinked
temporary file, so memory is bounded by frame size, never by the video's length. It is its own
module because it owns a decoder, a thread and a file descriptor, and the editing model only asks it for
pictures (and for frames in order, to follow a box).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from anonlab.errors import AnonlabError
from anonlab.media import open_media
from anonlab.privacy import private_tempdir
from anonlab.widgets.viewport import Viewport, _paste, render_view

#: JPEG size of a proxy frame at quality 80, bytes per pixel (measured: 55 kB for 960x540 video).
PROXY_BYTES_PER_PIXEL = 0.12


class FrameSource:
    """Frames for the canvas: exact full frames on demand, canvas-sized pictures cached (LRU by bytes),
    and an optional low-resolution JPEG proxy decoded once in a background thread.

    Memory is bounded by frame size, never by duration: the proxy's JPEGs go to a private
    temporary file (made in `anonlab.privacy.private_tempdir`, mode 0600 in a 0700 folder, and unlinked at
    once, so no other user can open it and nothing is left on disk even if the kernel is killed); memory
    holds only the LRU of canvas pictures (``cache_mb``) and the file's index (16 bytes a frame). An LRU in
    memory instead would keep only the frames last built or seen, so scrubbing back over an hour of footage
    would fall back to exact decodes (a seek plus up to a GOP each); on disk the whole video stays smooth.
    The proxy stops at ``proxy_mb`` of disk, a long video getting smaller proxy frames (down to a third of the
    canvas) so that all of it fits. ``stats`` counts hits for the benchmarks.
    """

    def __init__(self, path_or_reader, *, cache_mb: int = 128) -> None:
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
    def pixel_aspect(self) -> float:
        """A displayed pixel's width over its height: the video's SAR (64/45 for widescreen PAL), inverted when
        the video is shown turned a quarter; 1.0 for photos and square or unknown pixels."""
        sar = getattr(getattr(self.reader, "props", None), "sar", None)
        if not sar or sar <= 0:
            return 1.0
        turned = (int(getattr(self.reader, "rotation", 0) or 0) // 90) % 2
        return float(1 / sar if turned else sar)

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
