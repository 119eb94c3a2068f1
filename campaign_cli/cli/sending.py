"""Sending commands on the root: start, stop, resume, run, send; and `messages` / `events` listings."""

import typer


def register(app: typer.Typer) -> None:
    """Add the sending commands to the root app."""
