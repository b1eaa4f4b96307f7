"""Make the bundled sample media from a public-domain photo that a dependency ships.

Source: ``grace_hopper.jpg`` from matplotlib's ``mpl-data/sample_data`` (official U.S. Navy photograph of
Rear Admiral Grace M. Hopper, public domain). Run: ``python sample_media/make_samples.py`` (needs
matplotlib, i.e. the ``[jupyter]`` extra). Output (committed, small):

* ``portrait.jpg`` — the photo stored sideways with EXIF orientation 6 and a fake GPS position, camera
  make and serial, so the demo shows that orientation is honoured and metadata is stripped;
* ``street.mp4`` — 4 s, 640×360, 25 fps, H.264 + AAC audio: the face twice (one large and moving, one
  small and far) and a drawn licence plate driving across, so faces, plates and tracking all show up.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
FPS, SECONDS, W, H = 25, 4, 640, 360


def source_photo() -> np.ndarray:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return cv2.cvtColor(np.asarray(Image.open(path).convert("RGB")), cv2.COLOR_RGB2BGR)


def make_portrait(photo: np.ndarray) -> Path:
    out = HERE / "portrait.jpg"
    sideways = Image.fromarray(cv2.cvtColor(np.ascontiguousarray(np.rot90(photo, 1)), cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "ExampleCam"  # make
    exif[0xA431] = "SN-0000-EXAMPLE"  # body serial number
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 22.0, 7.0), 3: "E", 4: (4.0, 53.0, 41.0)})  # a made-up position
    sideways.save(out, quality=90, exif=exif)
    return out


def plate_image() -> np.ndarray:
    plate = np.full((36, 150, 3), 245, np.uint8)
    cv2.rectangle(plate, (1, 1), (148, 34), (20, 20, 20), 2)
    cv2.rectangle(plate, (3, 3), (18, 32), (160, 60, 0), -1)  # EU band
    cv2.putText(plate, "AN 0123 L", (24, 27), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (10, 10, 10), 2, cv2.LINE_AA)
    return plate


def scene(photo: np.ndarray, n: int) -> np.ndarray:
    t = n / (FPS * SECONDS)
    yy, xx = np.mgrid[0:H, 0:W]
    frame = np.stack([90 + 40 * yy / H, 100 + 30 * xx / W, np.full_like(xx, 110.0)], axis=2).astype(np.uint8)
    frame[250:, :] = (70, 72, 75)  # road
    big = cv2.resize(photo, (150, 176), interpolation=cv2.INTER_AREA)
    x = int(40 + 200 * t)
    frame[30:206, x : x + 150] = big
    small = cv2.resize(photo, (34, 40), interpolation=cv2.INTER_AREA)
    frame[60:100, 520:554] = small
    car_x = int(W - 260 * t * 1.8) % (W + 200) - 200
    car = np.full((80, 200, 3), (40, 40, 150), np.uint8)
    car[30:66, 25:175] = plate_image()
    x0, x1 = max(car_x, 0), min(car_x + 200, W)
    if x1 > x0:
        frame[262:342, x0:x1] = car[:, x0 - car_x : x1 - car_x]
    return frame


def make_video(photo: np.ndarray) -> Path:
    out_path = HERE / "street.mp4"
    out = av.open(str(out_path), "w")
    vs = out.add_stream("libx264", rate=FPS)
    vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
    vs.options = {"crf": "23", "preset": "medium"}
    a = out.add_stream("aac", rate=44100)
    a.layout = "stereo"
    for n in range(FPS * SECONDS):
        for p in vs.encode(av.VideoFrame.from_ndarray(scene(photo, n), format="bgr24")):
            out.mux(p)
    for p in vs.encode():
        out.mux(p)
    samples = 44100 * SECONDS
    t = np.arange(samples) / 44100
    tone = 0.15 * np.sin(2 * np.pi * (330 + 110 * t) * t)
    stereo = np.stack([tone, tone[::-1]]).astype(np.float32)
    for start in range(0, samples, 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, start : start + 1024]), format="fltp",
                                           layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
        for p in a.encode(frame):
            out.mux(p)
    for p in a.encode():
        out.mux(p)
    out.close()
    return out_path


if __name__ == "__main__":
    photo = source_photo()
    for path in (make_portrait(photo), make_video(photo)):
        print(f"wrote {path.relative_to(HERE.parent)} ({path.stat().st_size // 1024} KiB)")
