"""The streams an output leaves out (subtitles, data, attachments, further video streams), counted by kind.

`anonlab.media.write_video` keeps the first video stream, masked, and the audio; the others are dropped, since
anonlab cannot check them for what they disclose. A note after the run says so (`dropped_notes`) and the report
counts them (`dropped_streams`): counts only, never content.
"""

from __future__ import annotations

from pathlib import Path

from anonlab.errors import MediaError

__all__ = ["DROPPED_STREAMS", "dropped_notes", "dropped_streams"]

#: The kinds of stream an output leaves out, each with why it is not carried over.
DROPPED_STREAMS = {
    "subtitle": ("subtitle stream", "subtitles can name people and are not checked: add them back yourself after "
                 "review"),
    "data": ("data stream", "timecode, GPS and other telemetry can place people and are not checked"),
    "attachment": ("attachment", "attached fonts and pictures are not checked"),
    "extra_video": ("further video stream", "only the first video stream is masked; cover pictures and other "
                    "angles can show faces"),
    "other": ("stream of another kind", "not checked"),
}


def dropped_streams(path: str | Path) -> dict[str, int]:
    """How many of a video's streams its output leaves out, by kind (the keys of `DROPPED_STREAMS`, zeros too).

    Raises:
        MediaError: the file cannot be opened as a video.
    """
    import av  # a dependency of anonlab.media; imported here as only videos need it

    counts = dict.fromkeys(DROPPED_STREAMS, 0)
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise MediaError(f"{Path(path).name}: cannot list its streams ({exc.strerror or exc})") from None
    with container:
        masked = container.streams.video[0].index if container.streams.video else None
        for stream in container.streams:
            if stream.type == "audio" or stream.index == masked:
                continue
            kind = "extra_video" if stream.type == "video" else stream.type
            counts[kind if kind in counts else "other"] += 1
    return counts


def dropped_notes(counts: dict[str, int]) -> list[str]:
    """One line for each kind of stream `dropped_streams` counted (``note: 1 subtitle stream dropped (...)``)."""
    lines = []
    for kind, n in counts.items():
        if n:
            what, why = DROPPED_STREAMS.get(kind, DROPPED_STREAMS["other"])
            lines.append(f"note: {n} {what if n == 1 else _plural(what)} dropped ({why})")
    return lines


def _plural(what: str) -> str:
    head, _, tail = what.partition(" of ")  # "stream of another kind" -> "streams of another kind"
    return f"{head}s" + (f" of {tail}" if tail else "")
