"""The line protocol between a study's coordinator and its workers: one JSON object per line.

The coordinator writes to the worker's stdin; the worker answers on its own
pipe (the file descriptor named by `DETBENCH_REPLY_FD`), so that whatever a library prints on stdout
cannot be mistaken for an answer. Reading an answer has a deadline: a worker
that hangs or dies is named, never waited for forever.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import IO, Any

REPLY_FD_ENV = "DETBENCH_REPLY_FD"
MAX_LINE_BYTES = 1 << 20


class ChannelClosed(Exception):
    """The other side closed its end (it exited or died)."""


class ChannelTimeout(Exception):
    """No answer within the deadline."""


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, allow_nan=False) + "\n").encode()


class LineReader:
    """Whole lines from a pipe's file descriptor, with a deadline per line and a bound on its length."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def read(self, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE_BYTES:
                raise ChannelClosed(f"an answer longer than {MAX_LINE_BYTES} bytes")
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                raise ChannelTimeout(f"no answer within {timeout:g} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise ChannelClosed("the process closed its channel")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise ChannelClosed(f"an answer that is not JSON ({exc})") from exc
        if not isinstance(message, dict):
            raise ChannelClosed("an answer that is not a JSON object")
        return message


class WorkerEnd:
    """The worker's side: commands from stdin, answers on the pipe the coordinator passed."""

    def __init__(self, commands: IO[bytes], replies_fd: int | None = None) -> None:
        self.commands = LineReader(commands.fileno())
        self.replies_fd = replies_fd if replies_fd is not None else int(os.environ[REPLY_FD_ENV])

    def receive(self) -> dict[str, Any]:
        return self.commands.read(None)

    def send(self, message: dict[str, Any]) -> None:
        data = encode(message)
        while data:
            data = data[os.write(self.replies_fd, data):]
