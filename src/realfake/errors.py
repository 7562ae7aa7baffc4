"""Errors raised at the project's boundaries (files, configs, checkpoints)."""


class RealfakeError(Exception):
    """An error caused by the user's input; the CLI prints its message without a traceback."""


class DataError(RealfakeError):
    """A data source is missing, malformed or does not have the expected layout."""


class ConfigError(RealfakeError):
    """A configuration key or value is unknown or has the wrong type."""


class CheckpointError(RealfakeError):
    """A checkpoint or run directory is missing or does not hold what realfake wrote."""


class OutputError(RealfakeError):
    """An output file or folder cannot be written (read-only, a file in the way, exists)."""


class RunInUseError(CheckpointError):
    """A run directory is being written by another training process."""


class TrainingInterrupted(RealfakeError):
    """Training stopped on Ctrl-C or SIGTERM; the run can be resumed from its last checkpoint."""

    def __init__(self, run_dir: object, signal_name: str) -> None:
        self.run_dir = run_dir
        self.signal_name = signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
        super().__init__(
            f"training interrupted ({signal_name}); resume it with "
            f"`realfake train --resume {run_dir}`"
        )
