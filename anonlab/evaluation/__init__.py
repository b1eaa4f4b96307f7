"""Evaluation: how well the models and the tracker do, measured, and the material to measure on.

``images`` scores boxes on labelled photos (recall, precision, by size); ``temporal`` scores masks frame by
frame on clips (per-frame recall, interruptions); ``synth`` makes moving clips from labelled photos;
``teaching`` makes the small labelled sets and scenes the evaluation notebook teaches with.
"""
