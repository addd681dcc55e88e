"""A study worker's timed loop (`detbench.study.worker.TurnServer`) on the real channel protocol, with a CPU
forward: ready, warm-up, one turn per command, a bias probe, stop."""

from __future__ import annotations

import pytest
import torch

from detbench.errors import DetbenchError
from detbench.study.worker import TurnServer


class Channel:
    """The coordinator's side, scripted: the commands it sends and what the worker sent back."""

    def __init__(self, commands: list[dict]) -> None:
        self.commands, self.sent = list(commands), []

    def receive(self) -> dict:
        return self.commands.pop(0)

    def send(self, message: dict) -> None:
        self.sent.append(message)


def test_turns_are_timed_on_command_and_recorded_with_their_rounds():
    commands = [{"warmup": {}}, {"turn": 0}, {"turn": 1}, {"run": True, "forwards": 3}, {"turn": 2},
                {"stop": "decided"}]
    channel = Channel(commands)
    server = TurnServer(channel, turn_warmup=1)
    layer = torch.nn.Linear(8, 8)
    timings = server.loop(layer, lambda i: torch.ones(1, 8) * i, warmup=2, iters=0, device=torch.device("cpu"))
    kinds = [next(iter(message)) for message in channel.sent]
    assert kinds == ["ready", "warm", "ms", "ms", "run_ms", "ms"]
    assert server.rounds == [0, 1, 2] and server.stop_reason == "decided"
    assert len(channel.sent[4]["run_ms"]) == 3 and all(ms > 0 for ms in channel.sent[4]["run_ms"])
    assert timings.stop_reason == "study: decided" and timings.timed_s > 0


def test_a_command_out_of_order_is_a_protocol_error():
    server = TurnServer(Channel([{"turn": 0}]), turn_warmup=0)
    with pytest.raises(DetbenchError, match=r"study protocol: expected 'warmup', got \['turn'\]"):
        server.loop(torch.nn.Identity(), lambda i: torch.ones(1), warmup=0, iters=0, device=torch.device("cpu"))
    probe_first = TurnServer(Channel([{"warmup": {}}, {"run": True, "forwards": 1}]), turn_warmup=0)
    with pytest.raises(DetbenchError, match="a bias probe before any turn"):
        probe_first.loop(torch.nn.Identity(), lambda i: torch.ones(1), warmup=0, iters=0,
                         device=torch.device("cpu"))
