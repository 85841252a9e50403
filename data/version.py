"""The installed distribution's version (``tapos`` is a namespace package: no tapos/__init__.py)."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tapos")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
