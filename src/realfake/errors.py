"""Errors raised at the project's boundaries (files, configs, checkpoints)."""


class RealfakeError(Exception):
    """An error caused by the user's input; the CLI prints its message without a traceback."""


class DataError(RealfakeError):
    """A data source is missing, malformed or does not have the expected layout."""


class ConfigError(RealfakeError):
    """A configuration key or value is unknown or has the wrong type."""


class CheckpointError(RealfakeError):
    """A checkpoint or run directory is missing or does not hold what realfake wrote."""
