"""User-facing errors. The CLI prints their message without a traceback (exit code 2), so the
message must name the file and the problem, and say what to do next."""


class CareError(Exception):
    """Base class of every error the user can act on."""


class DatasetError(CareError):
    """A dataset on disk is missing, malformed or inconsistent (message names the file)."""


class ConfigError(CareError):
    """A config, or a checkpoint made with another config, cannot be used as asked."""


class CareWarning(UserWarning):
    """Something the user may want to act on, run goes on: the CLI prints it as one sentence
    (`care <command>: warning: ...`), without Python's file, line and source line."""
