"""campaign — a command-line campaign engine for chat applications."""

__version__ = "0.1.0"
