"""The HumanEval infilling harness of bench.quality: masking, answers, test execution."""

from __future__ import annotations

import random

from bench.quality import (
    check_all,
    first_line,
    make_tasks,
    mask,
    program,
    run_program,
    stop_after_first_line,
    summarize,
)

PROBLEM = {
    "task_id": "Toy/0",
    "prompt": 'def add_then_double(a, b):\n    """Return 2 * (a + b)."""\n',
    "canonical_solution": "    total = a + b\n\n    total *= 2\n    return total\n",
    "test": (
        "def check(candidate):\n    assert candidate(1, 2) == 6\n    assert candidate(0, 0) == 0\n"
    ),
    "entry_point": "add_then_double",
}


def test_mask_splits_around_one_non_blank_line() -> None:
    seen = set()
    for seed in range(20):
        task = mask(PROBLEM, random.Random(seed))
        whole = PROBLEM["prompt"] + PROBLEM["canonical_solution"]
        assert task.prefix + task.expected + "\n" + task.suffix == whole
        assert task.expected.strip()  # never the blank line
        assert task.prefix.count("\n") == task.line
        seen.add(task.expected)
    assert seen == {"    total = a + b", "    total *= 2", "    return total"}
    first = make_tasks([PROBLEM], seed=3, limit=None)[0]
    again = make_tasks([PROBLEM], seed=3, limit=None)[0]
    assert (first.line, first.expected) == (again.line, again.expected)


def test_first_line_keeps_indentation_and_skips_blank_lines() -> None:
    assert first_line("\n   \n        x = 1  \n        y = 2") == "        x = 1"
    assert first_line("  \n\n") == ""
    assert first_line("") == ""


def test_stop_after_first_line() -> None:
    assert not stop_after_first_line(b"    x = 1")
    assert not stop_after_first_line(b"\n   \n")
    assert stop_after_first_line(b"\n    x = 1\n")


def test_programs_pass_fail_and_time_out() -> None:
    task = mask(PROBLEM, random.Random(0))
    assert run_program(program(task, task.expected))
    assert not run_program(program(task, "    pass  # wrong"))
    assert not run_program(program(task, "this is not python"))
    assert not run_program("while True:\n    pass\n", timeout=1.0)


def test_check_all_and_summary_count_empty_and_mis_indented() -> None:
    tasks = [mask(PROBLEM, random.Random(seed)) for seed in range(3)]
    answers = [tasks[0].expected, "", "        " + tasks[2].expected.strip()]
    for task, answer in zip(tasks, answers, strict=True):
        task.answers["server"] = answer
    check_all(tasks, "server", answers)
    summary = summarize(tasks, "server")
    assert summary["passed"] == 1
    assert summary["empty"] == 1
    assert summary["mis_indented"] == 1
    assert summary["exact"] == 2  # same text, indentation aside
