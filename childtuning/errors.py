"""The one exception type for bad input: its message names the problem and the fix."""


class InputError(ValueError):
    """Bad configuration or data, detected before any expensive work."""


def check(ok: bool, message: str) -> None:
    """Raise InputError(message) unless `ok`: the one way a check of bad input fails."""
    if not ok:
        raise InputError(message)
