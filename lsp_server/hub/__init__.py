"""Models from the Hugging Face Hub and this machine: catalogue, downloads, licenses.

* :mod:`~lsp_server.hub.recommend` — ``recommend()``: the best completion and chat models
  from the catalogue (:mod:`lsp_server.models.catalog`) for this machine.
* :mod:`~lsp_server.hub.hf` — repository listings, remote GGUF headers (range reads),
  fit tables, typed Hub errors (offline, gated).
* :mod:`~lsp_server.hub.download` — resumable, verified downloads into the HF cache.
* :mod:`~lsp_server.hub.discovery` — GGUF files in the HF cache, LM Studio and folders.
* :mod:`~lsp_server.hub.licenses` / :mod:`~lsp_server.hub.gate` — license ids, the record
  of acceptances, and the gate before a download or a load.
* :mod:`~lsp_server.hub.selection` — ``openLlm/models/select``'s remembered choices.
* :mod:`~lsp_server.cli.models` — ``open-llm-lsp models ...``.

Plain Python (no pygls/lsprotocol); ``huggingface_hub`` is imported on demand.
"""
