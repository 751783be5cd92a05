"""Errors the services raise; the UI and CLI turn them into plain words."""

from __future__ import annotations


class KapError(Exception):
    """Base class: the message is safe to show to the user (no patient data)."""


class ValidationError(KapError):
    """Bad input. ``errors`` maps a field name to a plain-language message."""

    def __init__(self, errors: dict[str, str] | str, field: str | None = None):
        if isinstance(errors, str):
            errors = {field or "_": errors}
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" if k != "_" else v for k, v in self.errors.items()))


class PermissionDenied(KapError):
    """The acting user may not do this. Worded so it reveals nothing about the record."""

    def __init__(self, message: str = "You do not have access to this record."):
        super().__init__(message)


class NotFound(KapError):
    pass


class ConflictError(KapError):
    """Someone else changed the record first; nothing was overwritten."""

    def __init__(self, message: str, theirs: object | None = None):
        super().__init__(message)
        self.theirs = theirs
