"""Errors that grok reports as one line (`grok: error: ...`) instead of a traceback."""


class GrokError(Exception):
    """A problem the user can fix; the CLI prints it on one line and exits with `exit_code`."""

    exit_code = 2


class ConfigError(GrokError):
    """An impossible or misspelt configuration value."""


class DataError(GrokError):
    """A missing, corrupt or malformed data file, or an unwritable data directory."""


class RunDirError(GrokError):
    """A run directory that is busy, unwritable, or holds a run with a different config."""


class WriteError(GrokError):
    """A file grok had to write could not be written (disk full, read-only, not a directory)."""

    exit_code = 1


class TrainingFailed(GrokError):
    """Training stopped on a fault (NaN/inf loss); the run's status.json holds the reason."""

    exit_code = 1
