"""The scripted editor session behind ``make run`` (an LSP client, not the server)."""
