"""The error types shared by the data pipeline, the evaluation and the command line.

Each message says what was wrong and what to do; the command line prints str(err) as one line
and exits with code 2, never with a traceback. (The core's own errors live beside the code that
raises them: backend.BackendError, checkpoint.CheckpointError, training.RunFolderError.)
"""


class DatasetError(ValueError):
    """The one error type for bad data: its message says what was wrong and what to do.

    The command line prints str(err) and exits non-zero; no traceback reaches the user.
    """


class MissingExtraError(DatasetError, ImportError):
    """dlib, its landmark model or ffmpeg is not installed (they come with the [data] extra)."""


class ConfigError(ValueError):
    """A config value out of its range. `field` names the config field, `reason` says what it must
    be; str(err) is "field reason". The command line turns it into "--field reason"."""

    def __init__(self, field, reason):
        super().__init__(f"{field} {reason}")
        self.field, self.reason = field, reason
