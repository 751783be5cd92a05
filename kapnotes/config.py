"""Settings read from the environment, so one code base serves a laptop and a clinic."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kapnotes.errors import KapError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "sqlite:///data/kapnotes.db"


class ConfigError(KapError, ValueError):
    """A KAPNOTES_* setting is unusable; the message names the variable."""


def _int_env(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:  # a typo in a deployment should stop start-up loudly
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _timezone_env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip() or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} must be a time zone name such as America/New_York, got {value!r}") from None
    return value


@dataclass(frozen=True)
class SmtpSettings:
    """Where urgent-item notices go out: the clinic's own mail server (``KAPNOTES_SMTP_URL``)."""

    host: str
    port: int
    tls: bool  # smtps:// (TLS from the first byte); smtp:// uses STARTTLS when the server offers it
    username: str | None
    password: str | None
    sender: str

    def __repr__(self) -> str:  # never print the password (logs, tracebacks)
        return f"SmtpSettings(host={self.host!r}, port={self.port}, tls={self.tls}, sender={self.sender!r})"


DEFAULT_SMTP_FROM = "kapnotes@localhost"
DEFAULT_CRISIS_LINE = "988 Suicide & Crisis Lifeline: call or text 988"


def _smtp_env(url_name: str, from_name: str) -> SmtpSettings | None:
    """``smtp://[user:pass@]host[:port]`` or ``smtps://...``; unset or empty: no e-mail at all."""
    from urllib.parse import unquote, urlsplit

    raw = os.environ.get(url_name, "").strip()
    if not raw:
        return None
    problem = f"{url_name} must look like smtp://[user:password@]host:port or smtps://..."
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ConfigError(problem) from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(problem)
    tls = parts.scheme == "smtps"
    sender = os.environ.get(from_name, "").strip() or DEFAULT_SMTP_FROM
    if "@" not in sender or any(c in sender for c in " \r\n<>,;"):
        raise ConfigError(f"{from_name} must be one e-mail address such as kapnotes@clinic.example, got {sender!r}")
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if tls else 25),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        sender=sender,
    )


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
    smtp: SmtpSettings | None = None  # None: urgent-item e-mail is off (nothing is sent or attempted)
    # the records-request packet's letterhead (empty: the cover letter says "not set")
    clinic_address: str = ""
    clinic_phone: str = ""
    clinic_npi: str = ""
    session_hours: int = 12  # absolute lifetime of a sign-in, however active
    trust_proxy: bool = False  # believe X-Forwarded-Proto/-For (only behind our own reverse proxy)
    signin_ip_limit: int = 20  # failed sign-ins per client IP per 15 minutes before refusing more
    # patient check-in (issue 15)
    checkin_days: int = 30  # how long a new check-in link stays valid
    checkin_scales_days: int = 14  # the check-in asks for the GAD-7 and PHQ-9 when none is this recent
    crisis_line: str = DEFAULT_CRISIS_LINE

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def get_settings() -> Settings:
    """Read settings fresh each call: cheap, and tests can change the environment."""
    return Settings(
        database_url=os.environ.get("KAPNOTES_DATABASE_URL", DEFAULT_DATABASE_URL),
        clinic_name=os.environ.get("KAPNOTES_CLINIC_NAME", "KAPNotes Demo Clinic"),
        timezone=_timezone_env("KAPNOTES_TIMEZONE", "America/New_York"),
        idle_timeout_minutes=_int_env("KAPNOTES_IDLE_MINUTES", 15),
        max_failed_logins=_int_env("KAPNOTES_MAX_FAILED_LOGINS", 5),
        lockout_minutes=_int_env("KAPNOTES_LOCKOUT_MINUTES", 15),
        min_password_length=_int_env("KAPNOTES_MIN_PASSWORD_LENGTH", 12, minimum=12),  # may only be raised
        protocol_path=os.environ.get("KAPNOTES_PROTOCOL") or None,
        # Test suites hash hundreds of passwords; production never sets this.
        fast_password_hashing=os.environ.get("KAPNOTES_FAST_HASH") == "1",
        smtp=_smtp_env("KAPNOTES_SMTP_URL", "KAPNOTES_SMTP_FROM"),
        clinic_address=os.environ.get("KAPNOTES_CLINIC_ADDRESS", "").strip(),
        clinic_phone=os.environ.get("KAPNOTES_CLINIC_PHONE", "").strip(),
        clinic_npi=_npi_env("KAPNOTES_CLINIC_NPI"),
        session_hours=_int_env("KAPNOTES_SESSION_HOURS", 12),
        trust_proxy=os.environ.get("KAPNOTES_TRUST_PROXY") == "1",
        signin_ip_limit=_int_env("KAPNOTES_SIGNIN_IP_LIMIT", 20),
        # patient check-in (issue 15)
        checkin_days=_int_env("KAPNOTES_CHECKIN_DAYS", 30),
        checkin_scales_days=_int_env("KAPNOTES_CHECKIN_SCALES_DAYS", 14),
        crisis_line=os.environ.get("KAPNOTES_CRISIS_LINE", "").strip() or DEFAULT_CRISIS_LINE,
    )


def _npi_env(name: str) -> str:
    """A National Provider Identifier: ten digits (unset or empty: none)."""
    value = os.environ.get(name, "").strip()
    if value and not (len(value) == 10 and value.isdigit()):
        raise ConfigError(f"{name} must be a 10-digit NPI, got {value!r}")
    return value


# --- single sign-on (OpenID Connect, kapnotes.oidc) ---------------------------------------------


@dataclass(frozen=True)
class OidcSettings:
    """One OpenID provider, found by its discovery URL; unset: no single sign-on at all."""

    discovery_url: str
    client_id: str
    client_secret: str
    button_label: str

    def __repr__(self) -> str:  # never print the secret (logs, tracebacks)
        return f"OidcSettings(discovery_url={self.discovery_url!r}, client_id={self.client_id!r})"


def get_oidc_settings() -> OidcSettings | None:
    """``KAPNOTES_OIDC_DISCOVERY_URL`` and ``KAPNOTES_OIDC_CLIENT_ID`` turn single sign-on on;
    the secret is optional (a public client still uses PKCE). The discovery URL must be https,
    except on this machine's loopback (a provider run by the tests)."""
    from urllib.parse import urlsplit

    url = os.environ.get("KAPNOTES_OIDC_DISCOVERY_URL", "").strip()
    client_id = os.environ.get("KAPNOTES_OIDC_CLIENT_ID", "").strip()
    secret = os.environ.get("KAPNOTES_OIDC_CLIENT_SECRET", "").strip()
    label = os.environ.get("KAPNOTES_OIDC_BUTTON", "").strip() or "Sign in with single sign-on"
    if not url and not client_id:
        return None
    if not url or not client_id:
        raise ConfigError("Single sign-on needs both KAPNOTES_OIDC_DISCOVERY_URL and KAPNOTES_OIDC_CLIENT_ID.")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        host, parts = "", None
    loopback = host in ("127.0.0.1", "::1", "localhost")
    if parts is None or not host or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError("KAPNOTES_OIDC_DISCOVERY_URL must be an https:// URL such as "
                          f"https://accounts.google.com/.well-known/openid-configuration, got {url!r}")
    if len(label) > 80:
        raise ConfigError("KAPNOTES_OIDC_BUTTON can be at most 80 characters.")
    return OidcSettings(discovery_url=url, client_id=client_id, client_secret=secret, button_label=label)


# --- accounts (issue 14 items 3–4, issue 20 passwords) -------------------------------------------


def require_mfa() -> bool:
    """KAPNOTES_REQUIRE_MFA=1: prescribers and admins must enrol a second factor (TOTP) to sign in."""
    return os.environ.get("KAPNOTES_REQUIRE_MFA") == "1"


def signin_delay_max_seconds() -> int:
    """The longest wait the growing sign-in delay reaches (KAPNOTES_LOCKOUT_MINUTES, default 15)."""
    return 60 * get_settings().lockout_minutes
