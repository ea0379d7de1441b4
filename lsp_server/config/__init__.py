"""User settings: one fully defaulted pydantic model (see ``settings.py``)."""
