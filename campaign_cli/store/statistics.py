"""Fresh planner statistics while a sender grows the chat tables (PostgreSQL).

On a fresh database PostgreSQL plans the sender's lookups from the statistics of empty tables
and keeps those plans while the tables grow by millions of rows, so each batch gets slower than
the last. Autovacuum analyzes too late for that; the sender analyzes the tables it grows each
time they have doubled since it last did (a sampled ANALYZE of a few tables takes milliseconds).
"""

from __future__ import annotations

from sqlalchemy import Engine, text

# The tables a batch grows, whose size the sender's lookups depend on.
GROWING = ("channels", "channel_members", "messages", "campaign_targets")
FIRST_ANALYZE = 2_000


class Statistics:
    """Counts the rows a sender wrote and analyzes the growing tables when they have doubled."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self.written = 0
        self.next_analyze = FIRST_ANALYZE

    def grew(self, rows: int) -> None:
        """Note `rows` more rows written; analyze when due."""
        if not self.enabled:
            return
        self.written += rows
        if self.written >= self.next_analyze:
            self.analyze()
            self.next_analyze = self.written * 2

    def analyze(self) -> None:
        """Refresh the planner's statistics of the growing tables."""
        with self.engine.connect() as conn:
            conn.execute(text(f"ANALYZE {', '.join(GROWING)}"))
            conn.commit()
