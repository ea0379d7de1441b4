"""Chat templates (Jinja in a GGUF's metadata) cannot stall the server.

Every hostile template below is stopped by a bound of the sandbox or by the render's time
limit and falls back to ChatML; real templates render exactly as in Jinja's own sandbox;
and through the real server, ``openLlm/status`` answers while a hostile template renders
and the chat still answers (with ChatML).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lsp_server.engine.chat_template import (
    FALLBACK_TEMPLATE,
    chatml,
    render_chat,
    render_chat_async,
)
from lsp_server.engine.jinja_sandbox import TemplateLimit
from tests.security.hostile import bounded, rewrite_gguf, server

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "  Hi there.  "},
    {"role": "user", "content": "What is 2+2?"},
]

HOSTILE = {
    "power": "{{ 9 ** (9 ** 9) }}",
    "power of a variable": "{% set n = 9 ** 9 %}{{ 7 ** n }}",
    "squaring loop": (
        "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}"
        "{% endfor %}{{ ns.x }}"
    ),
    "nested loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "nested loops over a list": (
        "{% set r = range(100000)|list %}{% for i in r %}{% for j in r %}{% for k in r %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    ),
    "string multiplication": "{{ 'x' * 1000000000000 }}",
    "list multiplication": "{% set l = ['x' * 100000] * 100 %}{{ (l * 100)|join }}",
    "doubling with ~": (
        "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}"
    ),
    "doubling with +": (
        "{% set ns = namespace(s=['ab']) %}{% for i in range(60) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}"
    ),
    "center": "{{ 'x'|center(10000000000) }}",
    "ljust": "{{ 'x'.ljust(10000000000) }}",
    "replace": "{% set s = 'a' * 10000 %}{{ s|replace('a', s)|replace('a', s) }}",
    "join separator": "{{ range(100000)|join('x' * 100000) }}",
    "format width": "{{ '%0999999999d' % 1 }}",
    "dynamic width": "{{ '%*d' % (999999999, 1) }}",
    "str.format width": "{{ '{0:{1}}'.format(1, 999999999) }}",
    "expandtabs": "{{ ('\t' * 100000).expandtabs(100000) }}",
    "indent": "{{ ('a\n' * 100000)|indent(100000) }}",
    "batch fill": "{{ [1]|batch(1000000000, 'x')|list }}",
    "json indent": "{{ messages|tojson(indent=100000000) }}",
    "wordwrap": "{{ ('a ' * 100000)|wordwrap(1, wrapstring='x' * 100000) }}",
    "output size": "{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}",
    "macro output": (
        "{% set y = 'y' * 100000 %}{% macro m() %}{% for i in range(100000) %}{{ y }}"
        "{% endfor %}{% endmacro %}{{ m()|length }}"
    ),
    "block set": (
        "{% set y = 'y' * 100000 %}{% set x %}{% for i in range(100000) %}{{ y }}{% endfor %}"
        "{% endset %}{{ x|length }}"
    ),
    "filter block": (
        "{% set y = 'y' * 100000 %}{% filter length %}{% for i in range(100000) %}{{ y }}"
        "{% endfor %}{% endfilter %}"
    ),
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "raise_exception": "{{ raise_exception('no system role') }}",
    "attribute escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "syntax error": "{% for %}",
    "lipsum": "{{ lipsum(1000000) }}",
}


def _run(template: str) -> str:
    """Render on a thread, failing the test instead of hanging when a bound is missing."""
    return bounded(render_chat, template, MESSAGES)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_template_falls_back_to_chatml(name: str) -> None:
    assert _run(HOSTILE[name]) == render_chat(None, MESSAGES)


def test_the_fallback_is_chatml_for_messages_of_any_size() -> None:
    text = render_chat(None, MESSAGES)
    plain = ImmutableSandboxedEnvironment().from_string(FALLBACK_TEMPLATE)
    assert text == plain.render(messages=MESSAGES, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\n")
    huge = [{"role": "user", "content": "x" * 3_000_000}]  # above any template's cap
    assert chatml(huge) == plain.render(messages=huge, add_generation_prompt=True)
    # The cap grows with the content: a real template renders a huge message as it is.
    native = render_chat(LLAMA3, huge, bos_token="<s>")
    assert native.startswith("<s><|start_header_id|>user") and len(native) > 3_000_000


LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' "
    "%}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and "
    "assistant roles are supported!') }}{% endif %}{% endfor %}"
)
QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or
           (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- set role = "model" if message['role'] == 'assistant' else message['role'] -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {{- message['content'] | trim }}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
{%- set ns = namespace(n=0) -%}{%- for m in messages -%}{%- set ns.n = ns.n + m.content|length -%}
{%- endfor -%}{{ '' if ns.n > 0 else ('%05d' % ns.n) ~ ("{:>3}".format('') ) }}
"""


@pytest.mark.parametrize("template", [LLAMA3, QWEN25, GEMMA3], ids=["llama3", "qwen2.5", "gemma3"])
def test_real_templates_render_as_in_jinja(template: str) -> None:
    plain = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    plain.globals["raise_exception"] = lambda m: (_ for _ in ()).throw(ValueError(m))
    for messages in (MESSAGES, MESSAGES[1:], [{"role": "user", "content": "x" * 50_000}]):
        expected = plain.from_string(template).render(
            messages=messages, bos_token="<s>", eos_token="</s>", add_generation_prompt=True
        )
        assert render_chat(template, messages, bos_token="<s>", eos_token="</s>") == expected


def test_a_template_rejecting_the_messages_falls_back() -> None:
    # Mistral refuses a system message: ChatML instead of an error.
    assert render_chat(MISTRAL, MESSAGES) == render_chat(None, MESSAGES)
    assert render_chat(MISTRAL, MESSAGES[1:], bos_token="<s>", eos_token="</s>").startswith(
        "<s>[INST] Hello [/INST]"
    )


async def test_async_render_stops_at_its_time_limit_and_the_loop_keeps_running() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    with pytest.raises(TemplateLimit):
        await render_chat_async(HOSTILE["nested loops"], MESSAGES, timeout=0.5)
    stop.set()
    await task
    assert ticks > 100  # the event loop ran while the template spun on its thread


# --- through the real server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def spinning_model(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 whose chat template spins in nested loops (minutes in plain Jinja)."""
    folder = tmp_path_factory.mktemp("hostile-template")
    return rewrite_gguf(
        smollm2_path,
        folder / "spinning.gguf",
        {"tokenizer.chat_template": HOSTILE["nested loops"] + "{{ messages }}"},
    )


@pytest.mark.model
async def test_status_answers_while_a_hostile_template_renders(
    spinning_model: Path, tmp_path: Path
) -> None:
    options: dict[str, Any] = {
        "model": str(spinning_model),
        "completion": {"enabled": False},
        "engine": {"contextLength": 1024, "batchSize": 64},
    }
    async with server(tmp_path, options) as s:
        await s.until(lambda st: st["roles"]["chat"]["state"] == "ready")
        loop = asyncio.get_running_loop()
        params = {"messages": [{"role": "user", "content": "Say hi."}], "maxTokens": 4}
        generation = asyncio.ensure_future(s.request("openLlm/generate", params))
        await asyncio.sleep(0.2)  # the template is spinning on its thread now
        started = loop.time()
        status = await asyncio.wait_for(s.status(), timeout=10)
        assert loop.time() - started < 2.0, "openLlm/status waited for the template"
        assert not generation.done() or status["state"] == "ready"
        result = await asyncio.wait_for(generation, timeout=120)
        assert result["stats"]["generatedTokens"] >= 1  # the chat answered, with ChatML
        # The prompt a chat uses now is ChatML, and the template is not tried again.
        chat = await s.request("openLlm/chat/create", {"title": "t"})
        shown = await s.request(
            "openLlm/chat/renderPrompt", {"chatId": chat["id"], "content": "Hello"}
        )
        assert shown["text"].startswith("<|im_start|>system\n")  # the preset's prompt
        assert shown["text"].endswith("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
        assert "'role'" not in shown["text"]  # nothing of the hostile template's output
        warnings = [line for line in s.logs if "chat template" in line]
        assert len(warnings) == 1 and "spinning.gguf" in warnings[0], warnings
