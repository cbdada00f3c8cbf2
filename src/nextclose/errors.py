"""The bases of every error that is the user's to fix: the CLI prints its message, not a traceback."""


class UserError(Exception):
    """Bad params, bad data, an empty registry, a diverged training: the message says what to do."""


class DataError(UserError, ValueError):
    """Input data that cannot be used; the message names the source, the row and the rule."""
