"""Errors meant for the user: the CLI prints their message (no traceback) and exits with 2."""


class UserError(Exception):
    """Bad input or a missing resource; the message names the file/row/field and what to do."""


class AnnotationError(UserError, ValueError):
    """A malformed annotation file: the message names the file, the line and what is wrong."""


class MediaError(UserError):
    """A media file that cannot be used (missing, truncated, no audio, too short...)."""


class MissingCheckpointError(UserError, FileNotFoundError):
    """Weights that are not on disk: the message names the expected path and the official source."""


class UnknownNameError(UserError, KeyError):
    """A name that no registry holds (method, task, ...): the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
