"""anonlab: find and mask faces and licence plates in video and photos, on premise."""

from anonlab import _aliases
from anonlab.errors import AnonlabError
from anonlab.regions import LABELS, SOURCES, Regions

_aliases.install()

__version__ = "0.1.0"

__all__ = ["AnonlabError", "LABELS", "Regions", "SOURCES", "__version__"]
