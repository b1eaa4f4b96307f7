"""The sound track in the editing model: marks, ranges and the mode of the case's audio redaction.

A mixin of `anonlab.widgets.editor.EditorModel` (plain Python, no widgets): the analyst marks where a range
starts and stops on the player's timeline (seconds from frame 0, what `VideoReader.times` shows), adds or
removes ranges and picks what the export does in them (`anonlab.case.Case.set_audio`: one undoable edit each).
It lives apart from the editor because it is its own tool with its own state (the in and out marks) and
reads the model only through ``case``, ``frame``, ``times``, ``n_frames``, ``say`` and ``_notify``.
"""

from __future__ import annotations

import numpy as np

from anonlab.errors import AnonlabError

__all__ = ["SoundTrackEditing"]


class SoundTrackEditing:
    """Sound-track editing for `EditorModel`; ``audio_in`` / ``audio_out`` are the marks being set (seconds)."""

    audio_in: float | None = None
    audio_out: float | None = None

    @property
    def frame_end(self) -> float:
        """When the current frame stops showing, seconds (the next frame's time; the end on the last frame)."""
        return float(self.times[self.frame + 1]) if self.frame + 1 < self.n_frames else self.duration

    @property
    def duration(self) -> float:
        """Seconds from frame 0 to the end of the last frame."""
        step = float(np.median(np.diff(self.times))) if self.n_frames > 1 else 1.0 / (self.case.input.fps or 25.0)
        return float(self.times[-1]) + step

    @property
    def audio(self) -> tuple[str, tuple[tuple[float, float], ...]]:
        """The case's sound-track mode and ranges (`anonlab.case.Case.audio`)."""
        return self.case.audio

    def mark_audio_in(self, t: float | None = None) -> float:
        """Mark where the next range starts: ``t`` seconds, default the current frame's start."""
        self.audio_in = float(self.time if t is None else t)
        if self.audio_out is not None and self.audio_out <= self.audio_in:
            self.audio_out = None
        self.say(f"audio in at {self.audio_in:.2f} s", "audio")
        self._notify("audio")
        return self.audio_in

    def mark_audio_out(self, t: float | None = None) -> float:
        """Mark where the next range stops: ``t`` seconds, default the current frame's end."""
        self.audio_out = float(self.frame_end if t is None else t)
        if self.audio_in is not None and self.audio_in >= self.audio_out:
            self.audio_in = None
        self.say(f"audio out at {self.audio_out:.2f} s", "audio")
        self._notify("audio")
        return self.audio_out

    def add_audio_range(self, start: float | None = None, stop: float | None = None) -> tuple[float, float]:
        """Add ``[start, stop)`` seconds (default the in and out marks) to the case's ranges, as one edit.

        Ranges that overlap merge. The marks are cleared. Returns the range added.

        Raises:
            AnonlabError: no marks set, or a range the case refuses (stop not after start, past the end).
        """
        start = self.audio_in if start is None else float(start)
        stop = self.audio_out if stop is None else float(stop)
        if start is None or stop is None:
            raise AnonlabError("mark the range first: 'in' at its first frame, 'out' at its last")
        mode, ranges = self.case.audio
        self.case.set_audio(ranges=[*ranges, (start, stop)])
        self.audio_in = self.audio_out = None
        self.say(f"audio range {start:.2f}-{stop:.2f} s added" + ("" if mode != "keep" else
                                                                  "; choose mute, beep or voice to apply it"),
                 "audio")
        self._notify("audio")
        return start, stop

    def remove_audio_range(self, index: int | None = None) -> tuple[float, float]:
        """Remove range ``index`` (default: the one under the current frame), as one edit; returns it.

        Raises:
            AnonlabError: no such range (or none under the current frame).
        """
        mode, ranges = self.case.audio
        if index is None:
            here = [i for i, (a, b) in enumerate(ranges) if a <= self.time < b or a < self.frame_end <= b]
            if not here:
                raise AnonlabError("no audio range at this frame")
            index = here[0]
        if not 0 <= index < len(ranges):
            raise AnonlabError(f"there is no audio range {index}")
        gone = ranges[index]
        self.case.set_audio(ranges=[r for i, r in enumerate(ranges) if i != index])
        self.say(f"audio range {gone[0]:.2f}-{gone[1]:.2f} s removed", "audio")
        self._notify("audio")
        return gone

    def set_audio_mode(self, mode: str) -> None:
        """What the export does in the ranges (the whole track if there are none): keep, mute, beep or voice.

        Raises:
            AnonlabError: an unknown mode.
        """
        if mode == self.case.audio[0]:
            return
        self.case.set_audio(mode=mode)
        ranges = self.case.audio[1]
        where = f"{len(ranges)} range(s)" if ranges else "the whole track"
        self.say("audio kept as it is" if mode == "keep" else f"audio: {mode} over {where}", "audio")
        self._notify("audio")
