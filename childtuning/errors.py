"""The one exception type for bad input: its message names the problem and the fix."""


class InputError(ValueError):
    """Bad configuration or data, detected before any expensive work."""
