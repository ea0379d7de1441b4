"""Models that fit: hardware probes, memory estimates, file choice.

* :mod:`~lsp_server.hardware.probe` — RAM (cgroup-aware), cores, SIMD, GPUs.
* :mod:`~lsp_server.hardware.estimate` — weights + KV cache + compute for a GGUF file.
* :mod:`~lsp_server.hardware.select` — classify files (Full GPU / Partial / CPU / Won't fit).
* :mod:`~lsp_server.hardware.report` — plain-text tables for the CLI.

Quantization names, bits per weight and quality order come from
:mod:`lsp_server.models.quant`.

Modules are imported on demand; nothing here imports llama_cpp at import time.
"""
