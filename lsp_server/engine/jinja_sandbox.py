"""A Jinja sandbox for chat templates in which no single step can take long.

A GGUF's ``tokenizer.chat_template`` is a program written by whoever made the file. On
top of Jinja's immutable sandbox (no file access, no attribute beyond plain data, no
mutation of lists or dicts), every step that could take long in one C call is checked
*before* it runs, since a Python thread cannot be stopped in the middle of one:

* ``**``, ``*``, ``+`` and ``%`` on numbers (results of at most :data:`MAX_INT_BITS`
  bits) and on strings and lists (results within the output cap), ``~`` concatenation;
* string methods and filters that widen text (``center``/``ljust``/``zfill``,
  ``replace``, ``join``, ``indent``, ``wordwrap``, ``format`` and ``%`` widths,
  ``tojson`` indents, ``batch``/``slice`` counts, ``expandtabs``), the inputs and result
  of every filter, and every printed value (``finalize``);
* the output of macros and ``{% set %}``, filter and call blocks (``concat``);
* ``range`` is limited by Jinja's sandbox, ``lipsum`` is gone.

Everything else is bounded in time: :func:`render_bounded` installs a trace function on
its thread that stops the render after ``timeout`` seconds (loops are Python code), and
caps the output (:func:`output_cap`). Failures raise; callers choose the fallback.
"""

from __future__ import annotations

import datetime
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "MAX_INT_BITS",
    "MAX_TEMPLATE_CHARS",
    "MAX_WIDTH",
    "RENDER_TIMEOUT_S",
    "TemplateLimit",
    "compile_template",
    "output_cap",
    "render_bounded",
]

RENDER_TIMEOUT_S = 2.0
"""Wall time one render may take before it is stopped."""
MAX_TEMPLATE_CHARS = 256 * 1024
"""Longer templates are not compiled (real ones are a few KB)."""
MAX_INT_BITS = 4096
"""Largest integer (in bits) a template may compute."""
MAX_WIDTH = 10_000
"""Largest width, indent or count a template may pass to a filter or string method."""
_BASE_OUTPUT = 256 * 1024


def output_cap(messages: Sequence[Mapping[str, Any]]) -> int:
    """Most characters a render may produce: twice the content plus 256 KiB of markup."""
    content = sum(len(str(m.get("content", ""))) for m in messages)
    return _BASE_OUTPUT + 2 * content


class TemplateLimit(TemplateError):
    """A chat template went over a bound (time, size, number size)."""


# ---------------------------------------------------------------------------------------
# Bounds of the render running on this thread
# ---------------------------------------------------------------------------------------


class _Bounds(threading.local):
    cap: int = _BASE_OUTPUT
    deadline: float = float("inf")


_bounds = _Bounds()


def _check_time() -> None:
    if time.monotonic() > _bounds.deadline:
        raise TemplateLimit(f"the template took longer than {RENDER_TIMEOUT_S:g} s")


def _size(value: Any, budget: int) -> int:
    """Characters ``value`` would print as, roughly; stops counting once over ``budget``."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, Namespace):
            attrs = object.__getattribute__(item, "_Namespace__attrs")
            total += 16 + 4 * len(attrs)
            stack.extend(attrs.values())
        else:
            total += 24
        if total > budget:
            return total
    return total


def _check_size(value: Any, what: str = "a value") -> Any:
    cap = _bounds.cap
    if _size(value, cap) > cap:
        raise TemplateLimit(f"{what} would exceed {cap} characters")
    return value


def _check_int(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"a number above {MAX_INT_BITS} bits")


def _check_width(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
        raise TemplateLimit(f"{what} above {MAX_WIDTH}")
    if isinstance(value, str) and len(value) > MAX_WIDTH:
        raise TemplateLimit(f"{what} longer than {MAX_WIDTH}")


_WIDTHS = re.compile(r"\d{5,}")
_DYNAMIC = re.compile(r"%[-#0 +]*(?:\*|\d*\.\*)|\{[^{}]*\{")


def _check_format(fmt: Any, *args: Any) -> None:
    """Refuse ``%``/``format`` specs with widths or precisions of five digits or more,
    written in the format or (``%*d``, ``{0:{1}}``) given as an argument."""
    if not isinstance(fmt, str):
        return
    if _WIDTHS.search(fmt):
        raise TemplateLimit("a format width or precision above 9999")
    if _DYNAMIC.search(fmt):
        stack = list(args)
        while stack:
            item = stack.pop()
            if isinstance(item, (list, tuple)):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.values())
            else:
                _check_width(item, "a format width")


def _check_binop(op: str, left: Any, right: Any) -> None:
    _check_time()
    cap = _bounds.cap
    numbers = (int, float)
    if op == "**":
        big = isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
        if big and abs(left).bit_length() * right > MAX_INT_BITS:
            raise TemplateLimit(f"a power above {MAX_INT_BITS} bits")
        return
    if op == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateLimit(f"a product above {MAX_INT_BITS} bits")
            return
        seq, count = (left, right) if isinstance(right, int) else (right, left)
        repeats = isinstance(count, int) and not isinstance(seq, numbers)
        if repeats and (count > cap or _size(seq, cap) * max(count, 0) > cap):
            raise TemplateLimit(f"a repetition over {cap} characters")
        return
    if op == "+":
        joins = not (isinstance(left, numbers) and isinstance(right, numbers))
        if joins and _size(left, cap) + _size(right, cap) > cap:
            raise TemplateLimit(f"a concatenation over {cap} characters")
        return
    if op == "%" and isinstance(left, str):
        _check_format(left, right)
        if len(left) + _size(right, cap) > cap:
            raise TemplateLimit(f"a formatted string over {cap} characters")


# --- filters and string methods that can widen text ------------------------------------


def _guard_join(value: Any, d: Any = "", attribute: Any = None) -> None:
    if not isinstance(value, (list, tuple, range, dict, set, frozenset, str)):
        return  # other iterables were made lists by the filter wrapper (see below)
    cap = _bounds.cap
    sep = len(str(d)) * max(len(value) - 1, 0)
    if sep > cap or _size(value, cap) + sep > cap:
        raise TemplateLimit(f"a join over {cap} characters")


def _guard_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    text = str(s)
    old_s, new_s = str(old), str(new)
    hits = len(text) + 1 if old_s == "" else text.count(old_s)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * len(new_s) > _bounds.cap:
        raise TemplateLimit(f"a replace over {_bounds.cap} characters")


def _filter_guards() -> dict[str, Callable[..., None]]:
    def center(value: Any, width: Any = 80) -> None:
        _check_width(width, "a width")

    def indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
        _check_width(width, "an indent")
        unit = width if isinstance(width, int) else len(str(width))
        if (str(s).count("\n") + 1) * max(unit, 0) > _bounds.cap:
            raise TemplateLimit(f"an indent over {_bounds.cap} characters")

    def wordwrap(
        s: Any, width: Any = 79, break_long_words: bool = True, wrapstring: Any = None, *a: Any
    ) -> None:
        if wrapstring is not None and len(str(s)) * len(str(wrapstring)) > _bounds.cap:
            raise TemplateLimit(f"a wordwrap over {_bounds.cap} characters")

    def fmt(value: Any, *args: Any, **kwargs: Any) -> None:
        _check_format(value, args, kwargs)

    def tojson(value: Any, indent: Any = None) -> None:
        if indent is not None:
            _check_width(indent, "a JSON indent")
            unit = indent if isinstance(indent, int) else len(str(indent))
            if unit > 64:
                raise TemplateLimit("a JSON indent above 64")

    def batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
        _check_width(linecount, "a batch size")

    def slice_(value: Any, slices: Any, fill_with: Any = None) -> None:
        _check_width(slices, "a slice count")

    def truncate(
        s: Any, length: Any = 255, killwords: bool = False, end: Any = "...", *a: Any
    ) -> None:
        _check_width(end, "a truncation mark")

    return {
        "center": center,
        "indent": indent,
        "wordwrap": wordwrap,
        "format": fmt,
        "tojson": tojson,
        "batch": batch,
        "slice": slice_,
        "truncate": truncate,
        "join": _guard_join,
        "replace": _guard_replace,
    }


_METHOD_WIDTH = {"center", "ljust", "rjust", "zfill"}


def _guard_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    method = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return
    if name in _METHOD_WIDTH and args:
        _check_width(args[0], "a width")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int) and owner.count("\t") * max(size, 0) > _bounds.cap:
            raise TemplateLimit(f"expandtabs over {_bounds.cap} characters")
    elif name == "replace" and len(args) >= 2:
        _guard_replace(owner, args[0], args[1], args[2] if len(args) > 2 else None)
    elif name == "join" and args:
        _guard_join(args[0], owner)
    elif name in ("format", "format_map"):
        _check_format(owner, args, kwargs)


def _wrap_filter(name: str, func: Callable[..., Any], guard: Callable[..., None] | None) -> Any:
    """``func`` with its inputs and result size-checked (and ``guard`` run first).

    Generators among the arguments (``map``, ``select``...) are made lists first, so their
    size can be checked like any other value.
    """
    lead = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        values = [list(a) if isinstance(a, GeneratorType) else a for a in args[lead:]]
        for arg in (*values, *kwargs.values()):
            _check_size(arg, f"the input of the {name} filter")
        if guard is not None:
            guard(*values, **kwargs)
        result = func(*args[:lead], *values, **kwargs)
        _check_int(result)
        return _check_size(result, f"the {name} filter")

    if lead:  # keep Jinja's pass_context / pass_eval_context marker: arguments line up
        bounded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    bounded.__name__ = getattr(func, "__name__", name)
    return bounded


# ---------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------


def _bounded_buffer(parts: Iterable[Any]) -> str:
    """Join an output buffer (a macro's, a ``{% set %}`` block's...) once its total size is
    known to be within the cap: a loop inside a block could repeat a large value."""
    items = parts if isinstance(parts, list) else list(parts)
    cap = _bounds.cap
    total = 0
    for item in items:
        total += len(item) if isinstance(item, str) else _size(item, cap)
        if total > cap:
            raise TemplateLimit(f"a block's output would exceed {cap} characters")
    return "".join(str(item) for item in items)


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a size-checked join instead of a plain one."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every expensive step checked before it runs."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})
    code_generator_class = _BoundedCodeGenerator
    concat = staticmethod(_bounded_buffer)  # macros, {% set %} blocks, filter and call blocks

    def __init__(self) -> None:
        super().__init__(trim_blocks=True, lstrip_blocks=True, finalize=_finalize)
        guards = _filter_guards()
        self.filters = {
            name: _wrap_filter(name, func, guards.get(name)) for name, func in self.filters.items()
        }
        self.globals.pop("lipsum", None)
        self.globals["raise_exception"] = _raise
        self.globals["strftime_now"] = _strftime_now

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Check the operation's cost, then run it."""
        _check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        _check_int(result)
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call from the template: bounded string methods, size-checked results."""
        _check_time()
        _guard_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        _check_int(result)
        return _check_size(result, "a call's result")

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        """``a ~ b ~ ...`` with its total size checked first."""
        items = list(parts)
        _check_size(items, "a concatenation")
        return "".join(str(p) for p in items)


def _finalize(value: Any) -> Any:
    """Every printed value: size-checked before it is turned into text."""
    return _check_size(value, "a printed value")


def _raise(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    _check_format(fmt)
    return datetime.datetime.now().strftime(str(fmt)[:200])


_ENV: _BoundedEnvironment | None = None
_ENV_LOCK = threading.Lock()


def _environment() -> _BoundedEnvironment:
    global _ENV
    with _ENV_LOCK:
        if _ENV is None:
            _ENV = _BoundedEnvironment()
        return _ENV


@lru_cache(maxsize=8)
def compile_template(source: str) -> Any:
    """Compile ``source`` in the bounded sandbox (cached; refused when too long)."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateLimit(f"the template is longer than {MAX_TEMPLATE_CHARS} characters")
    return _environment().from_string(source)


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------


def _tracer(frame: FrameType, event: str, arg: Any) -> Any:
    if time.monotonic() > _bounds.deadline:
        raise TemplateLimit(f"the template took longer than {RENDER_TIMEOUT_S:g} s")
    return _tracer


def render_bounded(
    source: str,
    messages: list[dict[str, str]],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool,
    timeout: float,
) -> str:
    """Render ``source`` on this thread within ``timeout`` seconds and the output cap.

    :raises TemplateLimit: a bound was hit; any other exception of the template as is.
    """
    cap = output_cap(messages)
    _bounds.cap, _bounds.deadline = cap, time.monotonic() + timeout
    previous = sys.gettrace()
    sys.settrace(_tracer)
    try:
        template = compile_template(source)
        parts: list[str] = []
        size = 0
        for piece in template.generate(
            messages=messages,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        ):
            size += len(piece)
            if size > cap:
                raise TemplateLimit(f"the prompt would exceed {cap} characters")
            parts.append(piece)
        return "".join(parts)
    finally:
        sys.settrace(previous)
        _bounds.cap, _bounds.deadline = _BASE_OUTPUT, float("inf")
