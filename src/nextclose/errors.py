"""The base of every error that is the user's to fix: the CLI prints its message, not a traceback."""


class UserError(Exception):
    """Bad params, bad data, an empty registry, a diverged training: the message says what to do."""
