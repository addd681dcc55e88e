"""The one error type detbench raises for problems the user can fix, and how an unexpected error is shown in one."""


class DetbenchError(Exception):
    """A user-facing problem: the message is one line naming the file or flag and the fix."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (at most `limit` characters), or its type's name when it has none:
    how an error from a library is quoted inside a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
