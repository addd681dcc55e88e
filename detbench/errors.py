"""The one error type detbench raises for problems the user can fix."""


class DetbenchError(Exception):
    """A user-facing problem: the message is one line naming the file or flag and the fix."""
