"""Render chat messages with the model's own Jinja template, in a sandbox.

Most GGUF files carry ``tokenizer.chat_template``. It is rendered with Jinja's
immutable sandbox (no file or attribute access beyond plain data). Models
without a template get :data:`FALLBACK_TEMPLATE`, a ChatML layout, which is what
many small instruct models expect; base models answer poorly to any chat format.
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lsp_server.core.errors import InvalidParams

FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML, used when the model has no template of its own."""


def _raise(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def _compile(source: str) -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render_chat(
    template: str | None,
    messages: list[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render ``messages`` (``role``/``content`` dicts) into one prompt string."""
    try:
        return str(
            _compile(template or FALLBACK_TEMPLATE).render(
                messages=messages,
                bos_token=bos_token,
                eos_token=eos_token,
                add_generation_prompt=add_generation_prompt,
            )
        )
    except TemplateError as exc:
        raise InvalidParams(f"the model's chat template rejected these messages: {exc}") from exc
