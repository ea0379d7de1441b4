"""Foundations every package may use: typed errors, the data directory, paths."""
