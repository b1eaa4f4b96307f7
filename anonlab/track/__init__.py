"""Tracking and temporal safety: ids across frames, no bare frame inside a track, fewer full detections.

* `Tracker` (`bytetrack.py`) — Kalman + IoU association with a low-score second pass;
* `SceneCutDetector` (`scenecut.py`) — resets the tracker at shot changes;
* `apply_temporal_safety` (`temporal.py`) — gap filling and lead/trail extension over a whole video;
* `median_flow` (`flow.py`) — boxes carried by optical flow where nothing was detected;
* `analyse_frames` / `Analyser` (`analyse.py`) — the loop shared by CLI, workbench and batch:
  detection every ``detect_every`` frames, optical-flow propagation between, lost tracks held and new ones
  followed back for ``max_gap`` frames, each shot detected the way up its faces stand, temporal safety at the end;
  `stitch_chunks` joins chunks of one video analysed separately.
"""

from anonlab.track.analyse import Analyser, analyse_frames, median_flow, stitch_chunks
from anonlab.track.bytetrack import Tracker
from anonlab.track.scenecut import SceneCutDetector
from anonlab.track.temporal import apply_temporal_safety, extend_tracks, fill_gaps

__all__ = [
    "Analyser",
    "SceneCutDetector",
    "Tracker",
    "analyse_frames",
    "apply_temporal_safety",
    "extend_tracks",
    "fill_gaps",
    "median_flow",
    "stitch_chunks",
]
