"""The coordinator checks every answer a worker gives: a worker runs checkpoint code (with --unsafe-load, anyone's),
so an answer of the wrong shape, with numbers that are no latency, or about another model loses the worker
instead of crashing the study or landing in its results."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from detbench.study import engine


class Replies:
    """A worker's channel that answers with the messages given."""

    def __init__(self, *messages: dict) -> None:
        self.messages = list(messages)

    def read(self, timeout: float) -> dict:
        return self.messages.pop(0)


def worker(tmp_path: Path, *messages: dict) -> engine.Worker:
    return engine.Worker(0, None, Replies(*messages), tmp_path / "w0.log")


@pytest.mark.parametrize("message", [
    {"ms": [1, 2], "model": "m"}, {"ms": math.nan, "model": "m"}, {"ms": math.inf, "model": "m"},
    {"ms": -5.0, "model": "m"}, {"ms": True, "model": "m"}, {"ms": "12", "model": "m"}, {"ms": 0.0, "model": "m"},
])
def test_a_turn_answer_that_is_no_latency_loses_the_worker(tmp_path, message):
    with pytest.raises(engine.WorkerFailed, match="study protocol: 'ms' answer is not a latency in ms") as failed:
        worker(tmp_path, message).receive("ms", 1.0, model="m")
    assert failed.value.model is None  # the process's failure, not the model's


def test_an_answer_about_another_model_loses_the_worker(tmp_path):
    with pytest.raises(engine.WorkerFailed, match="an answer about another model to a command about m") as failed:
        worker(tmp_path, {"ms": 12.5, "model": "someone-else"}).receive("ms", 1.0, model="m")
    assert failed.value.model is None


def test_an_error_naming_another_model_fails_the_process_not_that_model(tmp_path):
    with pytest.raises(engine.WorkerFailed) as failed:
        worker(tmp_path, {"error": "x" * 10_000, "model": "baseline"}).receive("ms", 1.0, model="m")
    assert failed.value.model is None and len(failed.value.reason) <= engine.MAX_REASON_CHARS + 20
    with pytest.raises(engine.WorkerFailed) as own:
        worker(tmp_path, {"error": "out of memory", "model": "m"}).receive("ms", 1.0, model="m")
    assert own.value.model == "m" and own.value.reason == "out of memory"


@pytest.mark.parametrize(("key", "message", "why"), [
    ("warm", {"warm": {"warmup_ms": [{}]}, "model": "m"}, "has no warm-up timings"),
    ("ready", {"ready": {"failed": ["x"]}}, "does not list failed models by name"),
    ("done", {"done": {"m": {"path": 1}}}, "does not map model names to reports"),
    ("done", {"done": {"m": "a.json"}, "inspection": [1]}, "does not map model names to reports"),
    ("run_ms", {"run_ms": [1.0, "fast"], "model": "m"}, "is not a list of latencies in ms"),
    ("run_ms", {"run_ms": [1.0] * (engine.MAX_ANSWER_LIST + 1), "model": "m"}, "is not a list of latencies in ms"),
])
def test_answers_of_the_wrong_shape_lose_the_worker(tmp_path, key, message, why):
    model = message.get("model")
    with pytest.raises(engine.WorkerFailed, match=f"'{key}' answer {why}"):
        worker(tmp_path, message).receive(key, 1.0, model=model)


def test_well_formed_answers_pass(tmp_path):
    assert worker(tmp_path, {"ms": 12.5, "model": "m"}).receive("ms", 1.0, model="m") == 12.5
    done = {"done": {"m": "/x/m.w0.json"}, "inspection": {"m": None}, "failed": {"n": "its load failed"}}
    assert worker(tmp_path, done).receive("done", 1.0) == {"m": "/x/m.w0.json"}
