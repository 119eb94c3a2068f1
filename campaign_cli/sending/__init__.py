"""The sender loop and the event sinks that deliver what it records."""
