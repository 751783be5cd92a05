"""Settings read from the environment, so one code base serves a laptop and a clinic."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "sqlite:///data/kapnotes.db"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:  # a typo in a deployment should stop start-up loudly
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    database_url: str
    clinic_name: str
    timezone: str
    idle_timeout_minutes: int
    max_failed_logins: int
    lockout_minutes: int
    min_password_length: int
    protocol_path: str | None
    fast_password_hashing: bool

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def get_settings() -> Settings:
    """Read settings fresh each call: cheap, and tests can change the environment."""
    return Settings(
        database_url=os.environ.get("KAPNOTES_DATABASE_URL", DEFAULT_DATABASE_URL),
        clinic_name=os.environ.get("KAPNOTES_CLINIC_NAME", "KAPNotes Demo Clinic"),
        timezone=os.environ.get("KAPNOTES_TIMEZONE", "America/New_York"),
        idle_timeout_minutes=_int_env("KAPNOTES_IDLE_MINUTES", 15),
        max_failed_logins=_int_env("KAPNOTES_MAX_FAILED_LOGINS", 5),
        lockout_minutes=_int_env("KAPNOTES_LOCKOUT_MINUTES", 15),
        min_password_length=_int_env("KAPNOTES_MIN_PASSWORD_LENGTH", 12),
        protocol_path=os.environ.get("KAPNOTES_PROTOCOL") or None,
        # Test suites hash hundreds of passwords; production never sets this.
        fast_password_hashing=os.environ.get("KAPNOTES_FAST_HASH") == "1",
    )
