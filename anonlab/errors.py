"""Errors a person can act on.

`AnonlabError` carries one line: what is wrong, with which file, and what to do. The CLI prints it
without a traceback (the traceback only with ``--debug``). Messages never hold pixel data or region
coordinates, only file names, counts and settings.
"""


class AnonlabError(Exception):
    """A problem with the input, the settings or the environment that the user can fix."""


class MediaError(AnonlabError):
    """The input file cannot be read as a photo or video (corrupt, truncated, unsupported)."""


class OutputError(AnonlabError):
    """The output cannot be written (exists, same as input, read-only folder, disk full)."""
