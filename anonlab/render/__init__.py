"""Render: turn regions into masked pixels and write the output.

``mask`` holds the pure pixel functions (blur, pixelate, solid, shapes and extents); ``fx`` wraps them as a
moviepy effect for users who edit with moviepy. Writing the output file lives with the streams it must
keep faithful (``anonlab.media``).
"""
