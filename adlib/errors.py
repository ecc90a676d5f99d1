"""User-facing errors: one line naming the file or option and the fix.

The CLI prints `error: <message>` and exits with status 2 (no traceback unless --debug).
"""


class AdlibError(Exception):
    """A problem with the user's input or environment that they can fix; the message says how."""


class AdlibWarning(UserWarning):
    """Something the user should know (few validation images, a near-constant image); the work goes on."""


def warn(message: str):
    """One-line warning (the CLI prints it as `warning: <message>`)."""
    import warnings
    warnings.warn(message, AdlibWarning, stacklevel=2)
