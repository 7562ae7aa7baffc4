"""realfake: from-scratch CNNs that tell real photographs from AI-generated images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("realfake")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
