"""Benchmark the chat store: list, search and open a chat in a big workspace database.

Run ``python -m bench.chat_store [--json FILE] [--chats 10000] [--messages 200000]``.
It fills a fresh database (in a temporary data directory unless ``--data-dir``) with
synthetic chats whose text follows a Zipf word distribution, then times the public
:class:`ChatStore` calls: ``list_chats`` (first page), ``search`` (several keyword queries of
different frequencies) and ``get_chat`` (random chats), reporting p50/p95 against 50 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsp_server.storage import ChatStore
from lsp_server.storage.db import FTS_TABLES, FTS_TRIGGERS

TARGETS_MS = {"list_p95_ms": 50.0, "search_p95_ms": 50.0, "get_p95_ms": 50.0}
WORKSPACE = "file:///bench/workspace"

_TECH_TEXT = (
    "python function class error exception module import return value variable list dict "
    "string integer float async await thread process memory cache database query index "
    "server client request response json yaml config build test pytest docker kubernetes "
    "rust cargo borrow lifetime trait struct enum match typescript react component state "
    "hook render compile linker segfault pointer buffer overflow regex parser lexer token "
    "model prompt context gpu cuda tensor batch gradient loss optimizer deploy release "
    "branch merge rebase commit diff patch refactor rename interface generic iterator"
)
_COMMON_TEXT = (
    "the of and to a in is it you that for on with as this be are or can use not "
    "but from by at have if your will an do so what all there which when one how"
)
TECH_WORDS = _TECH_TEXT.split()
SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "du", "xa", "bi", "zo", "fe")


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """Return ``size`` distinct words: common English first, tech words, then pseudo-words."""
    common = _COMMON_TEXT.split()
    words: list[str] = list(dict.fromkeys(common + TECH_WORDS))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class TextMaker:
    """Draws Zipf-distributed words (s = 1.07) quickly with cumulative weights."""

    def __init__(self, words: Sequence[str], rng: random.Random) -> None:
        self.words = list(words)
        self.rng = rng
        self.cum = list(
            itertools.accumulate(1.0 / (rank**1.07) for rank in range(1, len(words) + 1))
        )

    def text(self, low: int, high: int) -> str:
        """Return a sentence-ish string of low..high words."""
        n = self.rng.randint(low, high)
        return " ".join(self.rng.choices(self.words, cum_weights=self.cum, k=n))


def generate(path: Path, chats: int, messages: int, seed: int) -> dict[str, Any]:
    """Fill the database at ``path`` (schema already created) in one transaction."""
    rng = random.Random(seed)
    words = vocabulary(20_000, rng)
    maker = TextMaker(words, rng)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    # Bulk load without the FTS triggers; reopening the store rebuilds the index.
    for trigger in FTS_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for table in FTS_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("BEGIN IMMEDIATE")
    folders = [(uuid.uuid4().hex, f"Folder {i}", 1_700_000_000_000) for i in range(20)]
    conn.executemany("INSERT INTO folders (id, name, created) VALUES (?, ?, ?)", folders)
    base = 1_700_000_000_000
    chat_ids = [uuid.uuid4().hex for _ in range(chats)]
    # Split the messages over chats: every chat gets at least one, the rest at random.
    counts = [1] * chats
    for i in rng.choices(range(chats), k=max(0, messages - chats)):
        counts[i] += 1
    chat_rows: list[tuple[Any, ...]] = []
    msg_rows: list[tuple[Any, ...]] = []
    clock = base
    for chat_id, count in zip(chat_ids, counts, strict=True):
        created = clock
        parent: str | None = None
        last_user: str | None = None
        previous_role = "assistant"
        for _ in range(count):
            clock += rng.randint(1, 5000)
            mid = uuid.uuid4().hex
            if previous_role == "assistant" and last_user is not None and rng.random() < 0.05:
                role, parent = "assistant", last_user  # a regenerated answer: a sibling branch
            else:
                role = "user" if previous_role == "assistant" else "assistant"
            if role == "user":
                content = maker.text(8, 60)
                stats: tuple[Any, ...] = (None, None, None, None, None, None)
                last_user = mid
            else:
                content = maker.text(30, 300)
                stats = (
                    rng.randint(50, 4000),
                    rng.randint(20, 800),
                    rng.uniform(50, 900),
                    rng.uniform(5, 80),
                    "stop",
                    "bench.gguf",
                )
            msg_rows.append((mid, chat_id, parent, role, content, "", None, clock, *stats, 0, None))
            parent = mid
            previous_role = role
        leaf = parent
        title = maker.text(2, 6).title()
        folder = rng.choice(folders)[0] if rng.random() < 0.3 else None
        pinned = 1 if rng.random() < 0.01 else 0
        chat_rows.append(
            (chat_id, title, folder, pinned, created, clock, None, None, "bench.gguf", leaf, None)
        )
    conn.executemany(
        "INSERT INTO chats (id, title, folder_id, pinned, created, updated, preset_json, "
        "system_prompt, model, active_leaf_id, deleted_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        chat_rows,
    )
    conn.executemany(
        "INSERT INTO messages (id, chat_id, parent_id, role, content, thinking, "
        "attachments_json, created, prompt_tokens, completion_tokens, ttft_ms, tokens_per_s, "
        "stop_reason, model, incomplete, truncation_json) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        msg_rows,
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return {"words": words, "chat_ids": chat_ids}


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the q-quantile (0..1) of samples, linear interpolation."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Run ``fn`` ``runs`` times after one warm-up; return durations in ms."""
    fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Return p50/p95/max/mean (ms) of samples."""
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(percentile(samples, 0.95), 3),
        "max_ms": round(max(samples), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "runs": len(samples),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the data, time the calls, print a table and optionally write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.chat_store", description=__doc__)
    parser.add_argument("--json", type=Path, help="write results to this JSON file")
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--data-dir", type=Path, help="keep the database here (default: temp)")
    args = parser.parse_args(argv)
    if args.chats < 1 or args.messages < args.chats:
        parser.error("need --chats >= 1 and --messages >= --chats")

    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="chat-bench-")
        data_dir = Path(tmp.name)
    else:
        data_dir = args.data_dir
    os.environ["OPEN_LLM_LSP_DATA_DIR"] = str(data_dir)
    try:
        with ChatStore(WORKSPACE) as store:
            path = store.path
            existing = store.list_chats(limit=1).total + store.list_trash(limit=1).total
        if existing:
            print(f"error: {path} already holds chats; use an empty --data-dir", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        info = generate(path, args.chats, args.messages, args.seed)
        t1 = time.perf_counter()
        store = ChatStore(WORKSPACE)  # rebuilds the FTS index dropped for the bulk load
        t2 = time.perf_counter()
        words: list[str] = info["words"]
        chat_ids: list[str] = info["chat_ids"]
        rng = random.Random(args.seed + 1)
        queries = {
            "very common word (rank 3)": words[3],
            "common word (rank 60)": words[60],
            "mid word (rank 600)": words[600],
            "rare word (rank 6000)": words[6000],
            "two words": f"{words[90]} {words[300]}",
            "tech word": "segfault",
        }
        results: dict[str, Any] = {}
        results["list"] = summary(timed(lambda: store.list_chats(limit=50), args.runs))
        results["list_title_sort"] = summary(
            timed(lambda: store.list_chats(sort="title", limit=50), args.runs)
        )
        folder_id = store.list_folders()[0].id
        results["list_folder"] = summary(
            timed(lambda: store.list_chats(folder_id=folder_id, limit=50), args.runs)
        )
        per_query: dict[str, dict[str, float]] = {}
        all_search: list[float] = []
        hits: dict[str, int] = {}
        for label, query in queries.items():
            samples = timed(lambda q=query: store.search(q, limit=20), args.runs)  # type: ignore[misc]
            per_query[f"{label}: {query}"] = summary(samples)
            hits[query] = len(store.search(query, limit=20))
            all_search.extend(samples)
        results["search"] = summary(all_search)
        results["search_by_query"] = per_query
        picks = iter(rng.choices(chat_ids, k=args.runs + 1))
        results["get"] = summary(timed(lambda: store.get_chat(next(picks)), args.runs))
        # Streaming: rewrite a <= 4 KB answer in place, as the server does every ~500 ms.
        chat = store.create_chat("streaming")
        user = store.append_message(chat.id, None, "user", "stream please")
        answer = store.append_message(chat.id, user.id, "assistant", "", incomplete=True)
        text = " ".join(words[:700])[:4096]
        sizes = itertools.cycle(range(64, 4097, 64))
        results["update_message"] = summary(
            timed(lambda: store.update_message(answer.id, content=text[: next(sizes)]), args.runs)
        )
        store.close()
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        ratios = {
            "list_p95": round(results["list"]["p95_ms"] / TARGETS_MS["list_p95_ms"], 3),
            "search_p95": round(results["search"]["p95_ms"] / TARGETS_MS["search_p95_ms"], 3),
            "get_p95": round(results["get"]["p95_ms"] / TARGETS_MS["get_p95_ms"], 3),
        }
        report = {
            "results": results,
            "ratios": ratios,
            "targets": TARGETS_MS,
            "params": {
                "chats": args.chats,
                "messages": args.messages,
                "runs": args.runs,
                "seed": args.seed,
                "cpus": os.cpu_count(),
                "sqlite": sqlite3.sqlite_version,
                "fts5": store.fts_enabled,
            },
            "db_size_bytes": size,
            "generate_s": round(t1 - t0, 2),
            "fts_rebuild_s": round(t2 - t1, 2),
            "search_hits": hits,
        }
        print(
            f"chats={args.chats} messages={args.messages} runs={args.runs} "
            f"sqlite={sqlite3.sqlite_version} fts5={store.fts_enabled}"
        )
        print(
            f"generate {report['generate_s']} s, FTS rebuild {report['fts_rebuild_s']} s, "
            f"database {size / 1e6:.1f} MB"
        )
        print(f"{'operation':<44} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        rows = [
            ("list (first page, by updated)", results["list"]),
            ("list (first page, by title)", results["list_title_sort"]),
            ("list (first page, one folder)", results["list_folder"]),
        ]
        rows += [(f"search {k}", v) for k, v in per_query.items()]
        rows += [
            ("search (all queries)", results["search"]),
            ("get_chat", results["get"]),
            ("update_message (streaming, <= 4 KB)", results["update_message"]),
        ]
        for label, s in rows:
            print(f"{label[:44]:<44} {s['p50_ms']:>8.2f} {s['p95_ms']:>8.2f} {s['max_ms']:>8.2f}")
        print("p95/target: " + ", ".join(f"{k}={v}" for k, v in ratios.items()))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
