"""What a model is: the GGUF reader, the quantization table, the catalogue, bundled models.

* :mod:`~lsp_server.models.gguf` — the GGUF header reader (metadata, tensors, size checks).
* :mod:`~lsp_server.models.quant` — one table of quantizations (ggml types, file types,
  bits per weight, quality order) and file-name parsing (quantization, QAT, split shards).
* :mod:`~lsp_server.models.catalog` — the curated catalogue (``catalog.json``) and its
  typed loader.
* :mod:`~lsp_server.models.bundled` — the models shipped as Python packages.

Imports only :mod:`lsp_server.core`.
"""
