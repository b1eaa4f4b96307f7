"""Errors a person can act on, and the rule for which exception a function raises.

The rule (one for the whole package):

* `AnonlabError` (and its subclasses here) for what the **user** can fix: a file that cannot be read, an
  output that cannot be written, a setting out of range, a case file damaged or edited by hand, an export
  the review gate refuses. The message is one line: what is wrong, with which file, and what to do. The
  CLI prints it without a traceback (the traceback only with ``--debug``); the workbench shows it beside the
  control that failed.
* `ValueError` / `TypeError` for **programming** errors: a caller passed arrays of the wrong shape or dtype,
  an unknown enum string from code, inconsistent arguments. A user never causes one through the CLI or the
  workbench (their input is checked first and turned into an `AnonlabError`), so the CLI reports it as an
  internal error.

Messages never hold pixel data or region coordinates, only file names, counts and settings: they end up
in terminals, logs and bug reports.
"""


class AnonlabError(Exception):
    """A problem with the input, the settings or the environment that the user can fix."""


class MediaError(AnonlabError):
    """The input file cannot be read as a photo or video (corrupt, truncated, unsupported)."""


class OutputError(AnonlabError):
    """The output cannot be written (exists, same as input, read-only folder, disk full)."""


class FileTooLargeError(AnonlabError):
    """A file is larger than its reader accepts (`anonlab.media.read_bytes_bounded`).

    Attributes:
        name: the file's base name.
        size: its size in bytes as far as known (more than ``limit``).
        limit: the most bytes the reader accepts.
    """

    def __init__(self, name: str, size: int, limit: int) -> None:
        super().__init__(f"{name}: larger than {limit} bytes ({size} bytes); is it the right file?")
        self.name, self.size, self.limit = name, size, limit
