"""Fresh planner statistics while a sender or an import grows tables (PostgreSQL).

On a fresh database PostgreSQL plans lookups from the statistics of empty tables and keeps
those plans while the tables grow by millions of rows, so each batch gets slower than the last.
Autovacuum analyzes too late for that (and never inside an import's one transaction); the writer
analyzes the tables it grows each time they have doubled since it last did (a sampled ANALYZE
takes milliseconds).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

# The tables a batch grows that the sender's lookups read (by cid, by channel).
GROWING = ("channels", "channel_members")
FIRST_ANALYZE = 20_000


class Statistics:
    """Counts the rows a writer wrote and analyzes the growing `tables` when they have doubled."""

    def __init__(self, engine: Engine, tables: tuple[str, ...] = GROWING):
        self.engine = engine
        self.tables = tables
        self.enabled = engine.dialect.name == "postgresql"
        self.written = 0
        self.next_analyze = FIRST_ANALYZE

    def grew(self, rows: int, conn: Connection | None = None) -> None:
        """Note `rows` more rows written; analyze when due, on `conn` when they are not committed yet
        (ANALYZE counts the rows of its own transaction)."""
        if not self.enabled:
            return
        self.written += rows
        if self.written >= self.next_analyze:
            self.analyze(conn)
            self.next_analyze = self.written * 2

    def analyze(self, conn: Connection | None = None) -> None:
        """Refresh the planner's statistics of the growing tables."""
        statement = text(f"ANALYZE {', '.join(self.tables)}")
        if conn is not None:
            conn.execute(statement)
            return
        with self.engine.connect() as own:
            own.execute(statement)
            own.commit()
