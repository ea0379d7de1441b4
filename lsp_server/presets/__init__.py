"""Presets: named bundles of system prompt, sampling settings and optional model.

Three layers (built-in < user < workspace), per-folder selection, import from LM Studio and
Ollama, linting and key completion for preset files, and the workspace safety rules.
"""

from lsp_server.presets.importers import (
    ImportResult,
    detect_format,
    import_lmstudio,
    import_modelfile,
    import_openllm,
    import_preset_file,
    import_preset_text,
)
from lsp_server.presets.lint import (
    Diagnostic,
    KeyCompletion,
    Severity,
    complete_preset_keys,
    lint_preset_text,
)
from lsp_server.presets.loader import (
    ActivePreset,
    PresetEntry,
    PresetListing,
    PresetManager,
    PresetOrigin,
    PresetProblem,
    PresetSource,
    builtin_presets_dir,
    folder_path,
)
from lsp_server.presets.models import (
    DEFAULT_PRESET_ID,
    SCHEMA_VERSION,
    CompletionOverrides,
    ModelRef,
    Preset,
    Sampling,
    parse_model_ref,
    slugify,
)
from lsp_server.presets.safety import SafetyPolicy, check_workspace_preset, workspace_refusal
from lsp_server.presets.schema import preset_json_schema, schema_path

__all__ = [
    "DEFAULT_PRESET_ID",
    "SCHEMA_VERSION",
    "ActivePreset",
    "CompletionOverrides",
    "Diagnostic",
    "ImportResult",
    "KeyCompletion",
    "ModelRef",
    "Preset",
    "PresetEntry",
    "PresetListing",
    "PresetManager",
    "PresetOrigin",
    "PresetProblem",
    "PresetSource",
    "SafetyPolicy",
    "Sampling",
    "Severity",
    "builtin_presets_dir",
    "check_workspace_preset",
    "complete_preset_keys",
    "detect_format",
    "folder_path",
    "import_lmstudio",
    "import_modelfile",
    "import_openllm",
    "import_preset_file",
    "import_preset_text",
    "lint_preset_text",
    "parse_model_ref",
    "preset_json_schema",
    "schema_path",
    "slugify",
    "workspace_refusal",
]
