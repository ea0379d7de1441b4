"""What the remote engine sends and reads, without a server: request bodies, the readers
of each API's events, the stop reason and the stats."""

from __future__ import annotations

from typing import Any

import pytest

from lsp_server.engine.base import GenerationRequest, InfillRequest, SamplingParams
from lsp_server.engine.remote import stream
from lsp_server.engine.remote.bodies import (
    completion_body,
    infill_body,
    sampling,
    stream_body,
)
from lsp_server.engine.remote.stream import Stream

REQUEST = InfillRequest(
    before="def add(a, b):\n",
    typed="    return ",
    suffix="\n\nprint(add(1, 2))\n",
    path="src/calc.py",
    language="python",
    extra=[("src/util.py", "def sub(a, b):\n    return a - b\n\n")],
    max_tokens=20,
    prompt="# src/util.py\ndef sub(a, b):\n    return a - b\n\n"
    "# src/calc.py\ndef add(a, b):\n    return ",
)


def test_sampling_leaves_neutral_values_out() -> None:
    assert sampling(SamplingParams(temperature=0, top_k=0, min_p=0, seed=-1)) == {
        "temperature": 0,
        "top_p": 0.95,
    }
    full = sampling(
        SamplingParams(
            top_k=20, repeat_penalty=1.1, presence_penalty=0.5, frequency_penalty=0.2, seed=3
        )
    )
    assert full == {
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": 20,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.2,
        "seed": 3,
    }


def test_stream_body() -> None:
    body = stream_body(GenerationRequest(max_tokens=9, stop=["\n\n"]), messages=[])
    assert body["messages"] == [] and body["max_tokens"] == 9 and body["stop"] == ["\n\n"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "stop" not in stream_body(GenerationRequest(), prompt="x")


def test_completion_bodies() -> None:
    infill = infill_body(REQUEST)
    assert (infill["input_prefix"], infill["prompt"]) == (REQUEST.before, REQUEST.typed)
    assert infill["input_suffix"] == REQUEST.suffix and infill["n_predict"] == 20
    assert infill["input_extra"] == [{"filename": "src/util.py", "text": REQUEST.extra[0][1]}]
    assert infill["temperature"] == 0 and infill["cache_prompt"] is True
    with_suffix = completion_body(REQUEST, suffix=True)
    assert with_suffix["suffix"] == REQUEST.suffix and with_suffix["max_tokens"] == 20
    assert with_suffix["prompt"] == REQUEST.prompt  # the planner's text prompt, as it is
    assert "suffix" not in completion_body(REQUEST, suffix=False)
    bare = InfillRequest(before="let x = ", typed="1", suffix="", language="javascript")
    assert completion_body(bare, suffix=False)["prompt"] == "let x = 1"


def test_reasoning_is_kept_as_a_think_section() -> None:
    st = Stream(0.0)
    events = [
        {"choices": [{"delta": {"reasoning_content": "Let me"}}]},
        {"choices": [{"delta": {"reasoning_content": " think."}}]},
        {"choices": [{"delta": {"content": "Hi"}}]},
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}},
    ]
    text = "".join(stream.chat_piece(e, st) for e in events)
    assert text == "<think>Let me think.</think>Hi"
    assert st.finish == "stop" and st.usage == {"prompt_tokens": 5, "completion_tokens": 4}


@pytest.mark.parametrize(
    "payload", [{}, {"choices": "x"}, {"choices": [None]}, {"choices": [{"delta": "x"}]}]
)
def test_odd_events_give_no_text(payload: dict[str, object]) -> None:
    st = Stream(0.0)
    assert stream.chat_piece(payload, st) == "" and stream.completion_piece(payload, st) == ""
    assert st.finish is None


def test_llama_servers_infill_stream() -> None:
    st = Stream(0.0)
    assert stream.infill_piece({"content": "a + b", "stop": False}, st) == "a + b"
    last = {"content": "", "stop": True, "stop_type": "limit", "tokens_predicted": 3}
    assert stream.infill_piece({**last, "tokens_evaluated": 40}, st) == ""
    assert st.done and st.finish == "length"
    assert st.usage == {"completion_tokens": 3, "prompt_tokens": 40}


@pytest.mark.parametrize(
    ("finish", "reason", "expected"),
    [
        ("length", None, "length"),
        ("stop", None, "eos"),
        ("end_turn", None, "eos"),
        (None, None, "eos"),
        ("tool_calls", None, "tool_calls"),
        ("length", "stop", "stop"),
        ("stop", "time", "time"),
    ],
)
def test_stop_reason(finish: str | None, reason: str | None, expected: str) -> None:
    st = Stream(0.0, finish=finish, reason=reason)
    assert stream.stop_reason(st) == expected
    assert stream.stop_reason(st, cancelled=True) == "cancelled"


def stream_of(
    chunks: int, usage: dict[str, Any] | None = None, timings: dict[str, Any] | None = None
) -> Stream:
    """``chunks`` pieces, the first 0.1 s after the request, the last 1 s later."""
    parts = ["x"] * chunks
    return Stream(0.0, parts, chunks, t_first=0.1, t_last=1.1, usage=usage, timings=timings)


def test_stats_from_openai_usage() -> None:
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 20},
    }
    s = stream.stats(stream_of(11, usage=usage), "eos")
    assert (s.prompt_tokens, s.reused_tokens, s.evaluated_tokens) == (30, 20, 10)
    assert s.generated_tokens == 11 and s.stop_reason == "eos"
    assert s.first_token_ms == pytest.approx(100) and s.prompt_ms == pytest.approx(100)
    assert s.generation_ms == pytest.approx(1000) and s.tokens_per_s == pytest.approx(10)


def test_stats_from_llama_server_timings() -> None:
    timings = {"prompt_n": 9, "cache_n": 3, "predicted_n": 6, "prompt_ms": 12.5}
    s = stream.stats(stream_of(3, timings=timings), "length")
    assert (s.prompt_tokens, s.reused_tokens, s.evaluated_tokens) == (12, 3, 9)
    assert s.generated_tokens == 6 and s.prompt_ms == 12.5
    assert s.tokens_per_s == pytest.approx(4)  # 2 pieces of 2 tokens after the first, in 1 s


def test_a_stream_stopped_here_counts_what_arrived() -> None:
    usage = {"prompt_tokens": 8, "completion_tokens": 50}
    assert stream.stats(stream_of(4, usage=usage), "cancelled").generated_tokens == 4
    assert stream.stats(stream_of(4), "error").generated_tokens == 4
    empty = stream.stats(Stream(0.0), "error")
    assert empty.generated_tokens == 0 and empty.first_token_ms == 0 and empty.tokens_per_s == 0
