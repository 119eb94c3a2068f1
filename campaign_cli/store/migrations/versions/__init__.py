"""Schema revisions, each chained on the one before (`down_revision`)."""
