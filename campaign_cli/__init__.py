"""campaign — a command-line campaign engine for chat applications."""

from campaign_cli.startup import defer_unused_stdlib

__version__ = "0.1.0"

defer_unused_stdlib()
