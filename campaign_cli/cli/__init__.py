"""The command line: argument parsing and rendering only; the rules live in the services."""
