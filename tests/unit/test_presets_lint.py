"""Linting and key completion of preset files, on real broken texts."""

from __future__ import annotations

from pathlib import Path

from lsp_server.presets import (
    Diagnostic,
    SafetyPolicy,
    Severity,
    complete_preset_keys,
    lint_preset_text,
)

VALID = """{
  "$schema": "./schema.json",
  "id": "team",
  "name": "Team",
  "sampling": {"temperature": 0.2, "stop": ["###"]}
}
"""


def _span(text: str, d: Diagnostic) -> str:
    lines = text.splitlines(keepends=True)
    assert d.line == d.end_line
    return lines[d.line][d.col : d.end_col]


def test_valid_text_has_no_diagnostics() -> None:
    assert lint_preset_text(VALID) == []


def test_invalid_json_points_at_the_error() -> None:
    text = '{\n  "id": "x",\n  "name": "X",\n  "sampling": {"temperature": 0.3,}\n}\n'
    [d] = lint_preset_text(text)
    assert d.code == "invalid-json" and d.severity is Severity.ERROR
    assert (d.line, d.col) == (3, text.splitlines()[3].index(",}") + 1)  # the "}" after ","
    assert "invalid JSON" in d.message


def test_unterminated_and_empty_texts() -> None:
    [d] = lint_preset_text('{\n  "id": "x",\n  "name": "unterminated\n')
    assert d.code == "invalid-json" and d.line == 2
    [empty] = lint_preset_text("   \n")
    assert empty.code == "invalid-json"
    [array] = lint_preset_text("[1, 2]")
    assert "JSON object" in array.message


def test_unknown_keys_are_marked_on_the_key_with_a_hint() -> None:
    text = (
        '{\n  "id": "x",\n  "name": "X",\n  "sytemPrompt": "hi",\n'
        '  "sampling": {\n    "temprature": 0.3\n  }\n}\n'
    )
    diagnostics = lint_preset_text(text)
    assert [d.code for d in diagnostics] == ["unknown-key", "unknown-key"]
    first, second = diagnostics
    assert _span(text, first) == '"sytemPrompt"'
    assert 'did you mean "systemPrompt"' in first.message
    assert (second.line, _span(text, second)) == (5, '"temprature"')
    assert 'did you mean "temperature"' in second.message


def test_wrong_types_and_ranges_are_marked_on_the_value() -> None:
    text = """{
  "id": "Not A Slug",
  "name": "X",
  "sampling": {
    "temperature": 3.5,
    "topK": "forty",
    "seed": -4,
    "stop": ["ok", 7, ""]
  },
  "tags": "review",
  "contextLength": 64,
  "completion": {"linesBefore": -1},
  "schemaVersion": 2,
  "model": "just-a-name"
}"""
    found = {(d.line, _span(text, d)): d.message for d in lint_preset_text(text)}
    assert "lowercase slug" in found[(1, '"Not A Slug"')]
    assert found[(4, "3.5")] == "sampling.temperature: must be at most 2.0 (got 3.5)"
    assert "expected a whole number" in found[(5, '"forty"')]
    assert "at least 0" in found[(6, "-4")]
    assert "expected a string" in found[(7, "7")]
    assert "must not be empty" in found[(7, '""')]
    assert "expected an array" in found[(9, '"review"')]
    assert "at least 128" in found[(10, "64")]
    assert "completion.linesBefore" in found[(11, "-1")]
    assert "must be 1" in found[(12, "2")]
    assert ".gguf path or a Hugging Face" in found[(13, '"just-a-name"')]


def test_missing_required_keys_and_duplicates() -> None:
    text = '{\n  "id": "x",\n  "id": "y"\n}'
    diagnostics = lint_preset_text(text)
    codes = {d.code: d for d in diagnostics}
    assert codes["missing-key"].message == 'missing required key "name"'
    assert (codes["missing-key"].line, codes["missing-key"].col) == (0, 0)
    assert codes["duplicate-key"].severity is Severity.WARNING
    assert codes["duplicate-key"].line == 1


def test_crlf_and_unicode_positions() -> None:
    text = '{\r\n  "name": "café ☕",\r\n  "id": "x", "topP": 1\r\n}'
    [d] = lint_preset_text(text)
    assert (d.line, d.col) == (2, 13)
    assert text.split("\r\n")[2][d.col : d.end_col] == '"topP"'


def test_safety_diagnostic_on_the_model_value(tmp_path: Path) -> None:
    text = '{"id": "x", "name": "X",\n "model": "../../outside/m.gguf"}'
    assert lint_preset_text(text) == []
    [d] = lint_preset_text(text, workspace_folder=tmp_path)
    assert d.code == "refused" and _span(text, d) == '"../../outside/m.gguf"'
    allowed = SafetyPolicy(allow_workspace_model_paths=True)
    assert lint_preset_text(text, workspace_folder=tmp_path, policy=allowed) == []


def _labels(text: str, line: int, col: int) -> list[str]:
    return [item.label for item in complete_preset_keys(text, line, col)]


def test_complete_top_level_keys_leaves_out_present_ones() -> None:
    text = '{\n  "id": "x",\n  \n}'
    labels = _labels(text, 2, 2)
    assert "name" in labels and "sampling" in labels and "systemPrompt" in labels
    assert "id" not in labels
    assert "temperature" not in labels
    after = '{\n  \n  "name": "X",\n  "sampling": {"topK": 3}\n}'
    labels = _labels(after, 1, 2)
    assert "name" not in labels and "sampling" not in labels and "id" in labels
    item = next(i for i in complete_preset_keys(text, 2, 2) if i.label == "contextLength")
    assert item.kind == "key" and item.insert_text == '"contextLength": '
    assert "integer" in item.detail and item.documentation


def test_complete_nested_keys_inside_a_partial_string() -> None:
    text = '{\n  "id": "x",\n  "sampling": {\n    "temperature": 0.1,\n    "to\n'
    items = complete_preset_keys(text, 4, 7)
    assert [i.label for i in items] == ["topP", "topK"]
    assert items[0].insert_text == "topP"
    assert "0.0..1.0" in items[0].detail
    completion = '{"completion": {"maxTokens": 5, '
    assert _labels(completion, 0, len(completion)) == ["linesBefore", "linesAfter", "timeBudgetMs"]


def test_complete_values_where_there_is_a_choice() -> None:
    text = '{\n  "schemaVersion": '
    assert _labels(text, 1, 19) == ["1"]
    seed = '{"sampling": {"seed": '
    items = complete_preset_keys(seed, 0, len(seed))
    assert [i.label for i in items] == ["null"] and items[0].kind == "value"


def test_no_completion_in_free_text_or_arrays_or_unknown_objects() -> None:
    assert complete_preset_keys('{"systemPrompt": "You ar', 0, 23) == []
    assert complete_preset_keys('{"tags": ["a", ', 0, 15) == []
    assert complete_preset_keys('{"bogus": {', 0, 11) == []
    assert complete_preset_keys("", 0, 0) == []
