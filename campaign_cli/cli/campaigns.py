"""Campaign commands on the root: create, get, status, update, delete, list, validate, preview."""

import typer


def register(app: typer.Typer) -> None:
    """Add the campaign commands to the root app."""
