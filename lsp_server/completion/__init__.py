"""Inline code completion: windows, extra context, prompt layout, stop and clean-up rules."""
