"""Errors the extractor raises: one line each, naming the input and what is wrong with it."""

from __future__ import annotations


class ExtractionError(Exception):
    """Raise when a run cannot be extracted; str(err) is one line fit for a user."""

    def __init__(self, message: str) -> None:
        # Keep the message on one line whatever the underlying library put in it.
        super().__init__(" ".join(str(message).split()))


class ExtractionCancelled(ExtractionError):
    """Raise when should_cancel asked the extraction to stop."""

    def __init__(self, message: str = "extraction cancelled") -> None:
        super().__init__(message)
