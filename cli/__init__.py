"""Command-line front end of grok: parses arguments and dispatches to the `grokking` library."""
