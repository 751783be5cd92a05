"""Who is asking: the one value every service takes, never a bare user id.

Its own small module so that the audit log, access checks and every service can name the
acting user without importing the sign-in machinery (``auth``), which itself writes audit
events.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapnotes.models import User


@dataclass(frozen=True)
class Actor:
    """Who is asking. Services take this, never a bare user id, and check it themselves."""

    id: int
    username: str
    full_name: str
    role: str
    credentials: str = ""

    @property
    def display_name(self) -> str:
        return f"{self.full_name}, {self.credentials}" if self.credentials else self.full_name


def actor_of(user: User) -> Actor:
    return Actor(user.id, user.username, user.full_name, user.role, user.credentials)
