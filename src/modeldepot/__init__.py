"""modeldepot: keeps generative video and image models available."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modeldepot")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
