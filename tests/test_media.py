"""Media I/O: exact seeking, faithful export (frames, timestamps, rotation, audio), photos, bad input."""

import os
import random
import subprocess

import av
import numpy as np
import pytest
from PIL import Image

from anonlab.errors import FileTooLargeError, MediaError, OutputError
from anonlab.media import (VideoReader, atomic_output, check_output_path, open_media, probe, read_bytes_bounded,
                           read_photo, sha256_file, write_photo, write_video)
from anonlab.report.verify import verify_photo, verify_video
from mediagen import barcode_frame, ffmpeg_exe, make_clip, read_barcode


@pytest.mark.parametrize("name", ["plain", "audio", "vfr", "rot90", "rot270"])
def test_reader_index_and_exact_seek(clips, name):
    with VideoReader(clips[name]) as video:
        n = video.n_frames
        assert [read_barcode(f) for _, f in video.frames()] == list(range(n))
        order = list(range(n))
        random.Random(1).shuffle(order)
        assert [read_barcode(video.get(i)) for i in order] == order
        assert (video.width, video.height) == (160, 96)  # displayed orientation, whatever the rotation
        assert video.times[0] == 0
        assert np.all(np.diff(video.times) > 0)


def test_vfr_times_are_the_real_ones(clips):
    with VideoReader(clips["vfr"]) as video:
        steps = np.round(np.diff(video.times), 3)
        assert set(steps.tolist()) <= {0.02, 0.04, 0.08}
        assert len(set(steps.tolist())) > 1
        assert video.fps == pytest.approx((video.n_frames - 1) / video.times[-1])


def test_frames_range_and_cache(clips):
    with VideoReader(clips["plain"], cache_size=4) as video:
        assert [n for n, _ in video.frames(10, 15)] == [10, 11, 12, 13, 14]
        for i in range(8):
            video.get(i)
        assert len(video._cache) == 4
        with pytest.raises(IndexError, match="outside 0..39"):
            video.get(video.n_frames)


@pytest.mark.parametrize("name", ["plain", "audio", "vfr", "rot90", "rot270"])
def test_export_is_faithful(clips, name, tmp_path):
    dst = tmp_path / ("out" + clips[name].suffix)
    info = write_video(clips[name], dst, lambda n, f: f, crf=10)
    assert info["frames"] == 40 or info["frames"] == 30
    checks = verify_video(clips[name], dst)
    assert all(ok for _, ok, _ in checks), checks
    with VideoReader(dst) as out:
        assert [read_barcode(f) for _, f in out.frames()] == list(range(out.n_frames))


def test_export_render_sees_each_frame_once_in_order(clips, tmp_path):
    seen = []

    def render(n, frame):
        seen.append((n, read_barcode(frame)))
        out = frame.copy()
        out[40:60, 40:60] = 0
        return out

    write_video(clips["rot90"], tmp_path / "o.mp4", render)
    assert seen == [(i, i) for i in range(30)]
    with VideoReader(tmp_path / "o.mp4") as out:
        assert out.get(5)[45:55, 45:55].max() < 40  # the edit landed in displayed coordinates


def test_audio_packets_byte_identical(clips, tmp_path):
    write_video(clips["audio"], tmp_path / "o.mp4", lambda n, f: f)
    def packets(p):
        with av.open(str(p)) as c:
            return [bytes(x) for x in c.demux(c.streams.audio[0]) if x.size]
    assert packets(clips["audio"]) == packets(tmp_path / "o.mp4")
    assert packets(tmp_path / "o.mp4")


@pytest.mark.skipif(ffmpeg_exe() is None, reason="needs imageio-ffmpeg's ffmpeg to make an edit list")
def test_edit_list_trimmed_clip(tmp_path):
    src = make_clip(tmp_path / "long.mp4", n_frames=60, gop=30, audio=True)
    trimmed = tmp_path / "trimmed.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-ss", "0.5", "-i", str(src), "-c", "copy", str(trimmed)],
                   check=True)
    with VideoReader(trimmed) as video:
        seq = [read_barcode(f) for _, f in video.frames()]
        plain = sum(1 for _ in av.open(str(trimmed)).decode(video=0))
        assert len(seq) == video.n_frames == plain  # discarded packets are not frames
        assert seq == list(range(seq[0], seq[0] + len(seq)))
        assert read_barcode(video.get(3)) == seq[3]
    write_video(trimmed, tmp_path / "o.mp4", lambda n, f: f)
    assert all(ok for _, ok, _ in verify_video(trimmed, tmp_path / "o.mp4"))


def test_container_location_metadata_stripped(tmp_path):
    src = make_clip(tmp_path / "gps.mp4", n_frames=5)
    tagged = tmp_path / "tagged.mp4"
    with av.open(str(src)) as inp, av.open(str(tagged), "w") as out:
        out.metadata.update({"location": "+52.3700+004.8900/", "title": "Case 17 Main St"})
        s = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = s
                out.mux(pkt)
    with av.open(str(tagged)) as c:
        assert "location" in c.metadata  # the muxer really wrote it
    write_video(tagged, tmp_path / "o.mp4", lambda n, f: f)
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert "location" not in c.metadata
        assert "title" not in c.metadata
    write_video(tagged, tmp_path / "k.mp4", lambda n, f: f, keep_metadata=True)
    with av.open(str(tmp_path / "k.mp4")) as c:
        assert "location" in c.metadata


def _remux(src, dst, tags=None, disposition=None):
    """Copy ``src``'s streams into ``dst`` giving each stream (by type) ``tags`` and ``disposition``."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {}
        for s in inp.streams:
            o = out.add_stream_from_template(s)
            o.metadata.update((tags or {}).get(s.type, {}))
            if disposition is not None:
                o.disposition = disposition.get(s.type, av.stream.Disposition(0))
            streams[s.index] = o
        for pkt in inp.demux():
            if pkt.dts is not None:
                pkt.stream = streams[pkt.stream_index]
                out.mux(pkt)
    return dst


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_stream_languages_and_dispositions_are_kept_and_verified(tmp_path, suffix):
    """A newcomer's English sound track came out as "und": players pick tracks by language and default flag."""
    clip = make_clip(tmp_path / "c.mp4", n_frames=10, audio=True)
    forced = av.stream.Disposition.default | av.stream.Disposition.forced
    src = _remux(clip, tmp_path / f"src{suffix}", {"video": {"language": "fra"}, "audio": {"language": "eng"}},
                 {"audio": forced} if suffix == ".mkv" else None)
    dst = tmp_path / f"out{suffix}"
    write_video(src, dst, lambda n, f: f)
    with av.open(str(dst)) as c:
        assert [s.metadata.get("language") for s in c.streams] == ["fra", "eng"]
        if suffix == ".mkv":
            assert c.streams.audio[0].disposition == forced
    checks = {n: (ok, detail) for n, ok, detail in verify_video(src, dst)}
    assert checks["stream languages"] == (True, "video fra, audio eng -> video fra, audio eng")
    assert checks["stream dispositions"][0]
    bare = _remux(clip, tmp_path / f"bare{suffix}")  # the same streams without the tags and flags, as before
    checks = {n: ok for n, ok, _ in verify_video(src, bare)}
    assert not checks["stream languages"]
    assert checks["stream dispositions"] == (suffix == ".mp4")  # MP4 marks the first stream of a kind default


def test_verify_passes_copied_audio_that_a_container_names_or_times_its_own_way(tmp_path):
    """Copied packets in another container: MP4 calls MP2 audio MP3, and Matroska, with no edit list, keeps
    AAC's priming frame as sound (as FFmpeg does). Neither is a difference; verify said FAIL to both."""
    clip = make_clip(tmp_path / "c.mp4", n_frames=25, audio=True)
    with av.open(str(clip)) as c:
        assert any(p.is_discard for p in c.demux(c.streams.audio[0]))  # the encoder's priming, cut by the edit list
    write_video(clip, tmp_path / "o.mkv", lambda n, f: f)
    assert all(ok for _, ok, _ in verify_video(clip, tmp_path / "o.mkv")), verify_video(clip, tmp_path / "o.mkv")
    mp2 = make_clip(tmp_path / "c.ts", n_frames=25, audio=True, audio_codec="mp2")
    write_video(mp2, tmp_path / "o.mp4", lambda n, f: f)
    checks = verify_video(mp2, tmp_path / "o.mp4")
    assert all(ok for _, ok, _ in checks), checks


@pytest.mark.parametrize("way, render", [("mirrored left-right", lambda f: f[:, ::-1]),
                                         ("turned 180°", lambda f: f[::-1, ::-1]),
                                         (None, lambda f: np.where(np.arange(f.shape[1])[None, :, None] < 100, 0, f))])
def test_verify_fails_a_mirrored_or_turned_picture(clips, tmp_path, way, render):
    """A newcomer's mirrored and upside-down outputs passed every check; a mask over most of a frame must not fail."""
    dst = tmp_path / "o.mp4"
    write_video(clips["plain"], dst, lambda n, f: np.ascontiguousarray(render(f)).astype(np.uint8))
    checks = {n: (ok, detail) for n, ok, detail in verify_video(clips["plain"], dst)}
    ok, detail = checks["picture the right way round"]
    assert ok == (way is None), detail
    assert (way or "8 picture(s) compared") in detail


def test_verify_fails_an_export_shifted_by_a_frame(clips, tmp_path):
    """Every count and timestamp of an export that shows frame n+1 at frame n is right: the pictures say it."""
    src = clips["plain"]
    with VideoReader(src) as reader:
        last = reader.n_frames - 1
        write_video(src, tmp_path / "shifted.mp4", lambda n, f: reader.get(min(n + 1, last)).copy())
    checks = {n: (ok, detail) for n, ok, detail in verify_video(src, tmp_path / "shifted.mp4")}
    assert checks["frame timestamps"][0] and checks["frame count"][0]
    assert checks["picture in time"] == (False, "frames show the input's next frame in 6 of 6 compared")
    write_video(src, tmp_path / "same.mp4", lambda n, f: f)
    checks = {n: (ok, detail) for n, ok, detail in verify_video(src, tmp_path / "same.mp4")}
    assert checks["picture in time"] == (True, "6 frame(s) compared with their neighbours")


def test_a_pq_clip_without_static_hdr_metadata_passes_verify(tmp_path):
    """x265's HDR10 signalling writes a content light level of 0 and 0 ("unknown") where the source gives none:
    verify said "HDR content light level: none -> present" of a faithful export."""
    src = tmp_path / "pq.mp4"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx265", rate=25)
        vs.width, vs.height, vs.pix_fmt = 160, 96, "yuv420p10le"
        vs.options = {"x265-params": "log-level=error"}
        ctx = vs.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace = 9, 16, 9  # BT.2020, PQ, BT.2020 NCL
        for n in range(6):
            frame = av.VideoFrame.from_ndarray(barcode_frame(n), format="bgr24").reformat(format="yuv420p10le")
            frame.pts = n
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    write_video(src, tmp_path / "o.mp4", lambda n, f: f)
    checks = {n: (ok, detail) for n, ok, detail in verify_video(src, tmp_path / "o.mp4")}
    from anonlab.media.streams import probe_video

    assert probe_video(src).color_trc == probe_video(tmp_path / "o.mp4").color_trc == 16  # PQ, HDR10 signalled
    assert checks["HDR content light level"] == (True, "none -> none")


def test_verify_photo_names_a_dropped_alpha_channel_and_grey_alpha_stays_grey(tmp_path):
    rgb = barcode_frame(5, 64, 48)[:, :, ::-1]
    alpha = np.full(rgb.shape[:2], 128, np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    Image.merge("LA", (Image.fromarray(rgb).convert("L"), Image.fromarray(alpha))).save(tmp_path / "la.png")
    for name, out in (("rgba", "o.jpg"), ("rgba", "o.png"), ("la", "la_o.png")):
        photo = read_photo(tmp_path / f"{name}.png")
        write_photo(photo, photo.image, tmp_path / out)
    checks = {n: (ok, d) for n, ok, d in verify_photo(tmp_path / "rgba.png", tmp_path / "o.jpg")}
    assert checks["alpha channel"] == (False, "present -> none (JPEG holds none: name a .png, .webp or .tif output)")
    assert checks["ICC profile"] == (True, "none")
    assert all(ok for _, ok, _ in verify_photo(tmp_path / "rgba.png", tmp_path / "o.png"))
    assert all(ok for _, ok, _ in verify_photo(tmp_path / "la.png", tmp_path / "la_o.png"))
    with Image.open(tmp_path / "la_o.png") as img:
        assert img.mode == "LA"


def test_timestamp_check_names_the_first_frame_that_moved():
    from anonlab.report.verify import timestamp_check

    a = np.arange(10) * 0.04
    b = a.copy()
    b[3:9] += 0.02  # frames between moved, the last did not: the durations agree
    assert timestamp_check(a, a) == ("frame timestamps", True, "10 frames at the same times, the last at 0.360s")
    assert timestamp_check(a, b) == ("frame timestamps", False, "frame 3 at 0.120s -> 0.140s; 6 of 10 frames moved")
    assert not timestamp_check(a, a[:9])[1]


def _photo_with_gps(path, orientation=6, fmt="JPEG", mode="RGB"):
    img = Image.fromarray(barcode_frame(77, 64, 48)[:, :, ::-1]).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Cam"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 1.0, 2.0)})
    img.save(path, format=fmt, exif=exif)
    return path


@pytest.mark.parametrize("ext, fmt", [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".tif", "TIFF")])
def test_photo_orientation_applied_and_metadata_stripped(tmp_path, ext, fmt):
    src = _photo_with_gps(tmp_path / f"in{ext}", fmt=fmt)
    photo = read_photo(src)
    assert photo.image.shape[:2] == (64, 48)  # orientation 6: stored 64x48 landscape, displayed portrait
    dst = tmp_path / f"out{ext}"
    write_photo(photo, photo.image, dst)
    checks = dict((n, ok) for n, ok, _ in verify_photo(src, dst))
    assert checks["no EXIF"]
    assert checks["no GPS"]
    assert checks["size and orientation"]
    with Image.open(dst) as out:
        assert out.format == fmt


def test_photo_keep_metadata_resets_orientation(tmp_path):
    src = _photo_with_gps(tmp_path / "in.jpg")
    photo = read_photo(src)
    write_photo(photo, photo.image, tmp_path / "o.jpg", keep_metadata=True)
    with Image.open(tmp_path / "o.jpg") as out:
        exif = out.getexif()
        assert exif[0x0112] == 1
        assert len(exif.get_ifd(0x8825)) > 0


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "I;16", "P"])
def test_photo_modes(tmp_path, mode):
    arr = barcode_frame(5, 40, 30)[:, :, ::-1]
    img = Image.fromarray(np.ascontiguousarray(arr))
    if mode == "I;16":
        img = Image.fromarray((np.asarray(img.convert("L")).astype(np.uint16) * 257))
    else:
        img = img.convert(mode)
    path = tmp_path / ("in.png" if mode != "CMYK" else "in.jpg")
    img.save(path)
    photo = read_photo(path)
    assert photo.image.shape == (30, 40, 3)
    assert photo.image.dtype == np.uint8
    assert (photo.alpha is not None) == (mode == "RGBA")
    write_photo(photo, photo.image, tmp_path / ("out" + path.suffix))


def test_probe_by_content_not_extension(tmp_path, clips):
    jpg_named_mp4 = tmp_path / "photo.mp4"
    Image.fromarray(barcode_frame(1)).save(jpg_named_mp4, format="JPEG")
    assert probe(jpg_named_mp4) == "photo"
    video_named_jpg = tmp_path / "clip.jpg"
    video_named_jpg.write_bytes(clips["plain"].read_bytes())
    assert probe(video_named_jpg) == "video"
    assert open_media(video_named_jpg).n_frames == 40


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"this is not a video, just text\n" * 10, "not a video or photo"),
])
def test_bad_input_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message) as err:
        open_media(path)
    assert "\n" not in str(err.value)
    assert "bad.mp4" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        open_media(tmp_path / "nope.mp4")


def test_truncated_video_keeps_readable_frames(tmp_path, clips):
    data = clips["plain"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # mp4 with moov at the end: moov missing
    with pytest.raises(MediaError, match="not a video or photo anonlab can read"):
        VideoReader(cut)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    dst = tmp_path / "o.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(dst) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(dst) as tmp:
        tmp.write_bytes(b"whole")
    assert dst.read_bytes() == b"whole"
    assert len(list(tmp_path.iterdir())) == 1


def test_output_path_guards(tmp_path, clips):
    with pytest.raises(OutputError, match="overwrite the input"):
        check_output_path(clips["plain"], clips["plain"], overwrite=True)
    existing = tmp_path / "e.mp4"
    existing.write_bytes(b"x")
    with pytest.raises(OutputError, match="--overwrite"):
        check_output_path(clips["plain"], existing, overwrite=False)
    assert check_output_path(clips["plain"], existing, overwrite=True) == existing


def test_read_bytes_bounded(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"x" * 10)
    assert read_bytes_bounded(p, 10) == b"x" * 10
    with pytest.raises(FileTooLargeError, match="larger than 9 bytes") as exc:
        read_bytes_bounded(p, 9)
    assert (exc.value.size, exc.value.limit) == (10, 9)
    assert str(exc.value) == "f.bin: larger than 9 bytes (10 bytes); is it the right file?"
    (tmp_path / "empty").write_bytes(b"")
    assert read_bytes_bounded(tmp_path / "empty", 0) == b""
    with pytest.raises(FileNotFoundError, match="none"):
        read_bytes_bounded(tmp_path / "none", 10)
    with pytest.raises(IsADirectoryError, match="Is a directory"):
        read_bytes_bounded(tmp_path, 10)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_read_bytes_bounded_stops_at_the_limit_on_a_file_without_size():
    assert os.stat("/proc/self/status").st_size == 0  # what the test relies on: it reports no size
    assert b"Pid:" in read_bytes_bounded("/proc/self/status", 1 << 20)
    with pytest.raises(FileTooLargeError, match="larger than 5 bytes") as exc:
        read_bytes_bounded("/proc/self/status", 5)
    assert exc.value.size == 6  # read no further than the limit + 1


def test_failure_mid_export_leaves_input_untouched_and_no_partial(tmp_path, clips):
    before = sha256_file(clips["audio"])
    dst = tmp_path / "o.mp4"

    def render(n, frame):
        if n == 20:
            raise RuntimeError("simulated crash mid-export")
        return frame

    with pytest.raises(RuntimeError, match="simulated crash"):
        with atomic_output(dst) as tmp:
            write_video(clips["audio"], tmp, render)
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []
    assert sha256_file(clips["audio"]) == before


# --- only the masks' rectangles are compared and converted back (issue 18) ----------------------------------
@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_coded_boxes_follow_the_rotation(turns):
    from anonlab.media.pixels import coded_boxes

    rng = np.random.default_rng(turns)
    coded = np.zeros((7, 11), bool)
    shown = np.rot90(coded, turns)
    for _ in range(20):
        h, w = shown.shape
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x2, y2 = int(rng.integers(x1 + 1, w + 1)), int(rng.integers(y1 + 1, h + 1))
        want = np.zeros(shown.shape, bool)
        want[y1:y2, x1:x2] = True
        (cx1, cy1, cx2, cy2), = coded_boxes(np.array([[x1, y1, x2, y2]]), turns, 11, 7).tolist()
        got = np.zeros(coded.shape, bool)
        got[cy1:cy2, cx1:cx2] = True
        assert np.array_equal(np.rot90(got, turns), want)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le", "yuv444p"])
def test_composite_in_boxes_equals_composite_over_the_frame(pix_fmt):
    """Comparing and converting only inside the masks' boxes writes the very samples the whole-frame path writes
    (even widths: swscale's exact path; x264 needs even sizes, odd ones go to HEVC 4:4:4)."""
    from anonlab.media.pixels import Converter

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    masked = image.copy()
    boxes = np.array([[3, 5, 40, 33], [30, 20, 61, 50], [120, 61, 160, 90], [150, 0, 150, 10]])
    for x1, y1, x2, y2 in boxes[:3]:
        masked[y1:y2, x1:x2] = rng.integers(0, 256, (y2 - y1, x2 - x1, 3), dtype=np.uint8)
    conv = Converter(1, 1)
    planes = []
    for where in (None, boxes):
        base = conv.from_bgr(image, pix_fmt)
        assert conv.composite(base, masked, image, where)
        planes.append([bytes(p) for p in base.planes])
    assert planes[0] == planes[1]
    untouched = conv.from_bgr(image, pix_fmt)
    assert not conv.composite(untouched, image.copy(), image, boxes)


def test_x264_uses_the_measured_preset_unless_one_is_named(clips):
    from anonlab.media.streams import X264_PARAMS, X264_PRESET, plan_video, probe_video

    props = probe_video(clips["plain"])
    plan = plan_video(props, "out.mp4")
    assert plan.options["preset"] == X264_PRESET
    assert set(X264_PARAMS) <= set(plan.options["x264-params"].split(":"))
    assert "mbtree=0" in plan.options["x264-params"].split(":")  # deterministic bytes rest on it
    named = plan_video(props, "out.mp4", preset="medium")
    assert named.options["preset"] == "medium"
    assert named.options["x264-params"] == "mbtree=0"


def test_mpeg_ts_frames_at_keyframes_are_decoded_not_black(tmp_path):
    """MPEG-2 in MPEG-TS (broadcast, camcorders): libavformat's seek there compares decoding timestamps, so a
    seek to a keyframe's own time landed on the next keyframe and the whole GOP before it came out black."""
    from archivekinds import write_clip

    path = write_clip(tmp_path / "broadcast.ts", codec="mpeg2video", width=176, height=144, n_frames=40,
                      options={"g": "12", "bf": "2", "qscale": "2"}, container="mpegts")
    with VideoReader(path) as video:
        assert video.n_frames == 40
        assert [read_barcode(f) for _, f in video.frames()] == list(range(40))
        for n in (0, 12, 24, 39, 11, 36):  # keyframes first, then frames at the end of a GOP
            assert read_barcode(video.get(n)) == n, n
        assert not video.damaged


def test_a_vfr_clip_keeps_its_last_frame_duration(tmp_path):
    """A newcomer's VFR clip (one frame in ten kept, ``-fps_mode vfr``): every timestamp matched, but the encoder
    left the last packets without a duration and the muxer guessed one: the stream said 3.850 s for 3.804 s."""
    src = tmp_path / "vfr.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(make_clip(tmp_path / "cfr.mp4", n_frames=60, fps=30)),
                    "-vf", r"select=lt(mod(n\,10)\,4)", "-fps_mode", "vfr", "-c:v", "libx264", str(src)], check=True)
    out = tmp_path / "o.mp4"
    write_video(src, out, lambda n, f: f)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        assert float(sb.duration * sb.time_base) == pytest.approx(float(sa.duration * sa.time_base), abs=1e-3)
    checks = {name: ok for name, ok, _ in verify_video(src, out)}
    assert checks["video duration stated"] and all(checks.values()), checks
