"""User-facing errors: one line naming the file or option and the fix.

The CLI prints `error: <message>` and exits with status 2 (no traceback unless --debug).
"""


class AdlibError(Exception):
    """A problem with the user's input or environment that they can fix; the message says how."""
