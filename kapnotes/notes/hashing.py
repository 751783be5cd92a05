"""The content hash of a signed note: SHA-256 over a canonical JSON of what was signed.

Defined once so signing, verification, PDFs and the seeder agree byte for byte.
"""

from __future__ import annotations

import hashlib
import json

from kapnotes.models import SessionNote

SIGNED_FIELDS = (
    "patient_id", "author_id", "note_type", "session_date", "start_time", "end_time",
    "modality", "fields", "free_text", "integrates_dose_id",
)


def canonical(note: SessionNote) -> str:
    data = {name: getattr(note, name) for name in SIGNED_FIELDS}
    data["session_date"] = note.session_date.isoformat()
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(note: SessionNote) -> str:
    return hashlib.sha256(canonical(note).encode("utf-8")).hexdigest()


def text_hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


# --- keyed signatures: a MAC under a key the database never holds -------------------------------
#
# The content hash alone proves nothing against someone who can write the database: they can
# change the text and recompute it. The MAC can only be made with the signing key, which lives
# in a file outside the database (``KAPNOTES_SIGNING_KEY_FILE``), is backed up apart from it and
# is never readable through SQL. The key file holds ``<key id> <64 hex digits>`` lines; new
# signatures use the last line, verification the key id stored with each signature, so a key
# can be rotated without re-signing anything.

import hmac  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

from kapnotes.errors import KapError  # noqa: E402

KEY_FILE_ENV = "KAPNOTES_SIGNING_KEY_FILE"
_KEY_LINE = re.compile(r"^([A-Za-z0-9_.-]{1,32})\s+([0-9a-fA-F]{64})$")


class SigningKeyError(KapError):
    """The signing key file is unreadable or malformed (the message says how to fix it)."""


def default_key_path(database_url: str | None = None) -> Path:
    """``KAPNOTES_SIGNING_KEY_FILE``, else ``signing.key`` beside the SQLite file, else
    ``data/signing.key`` under the working directory (PostgreSQL deployments should set the
    variable to a path outside any database backup)."""
    explicit = os.environ.get(KEY_FILE_ENV, "").strip()
    if explicit:
        return Path(explicit)
    from sqlalchemy.engine import make_url

    from kapnotes.config import get_settings

    url = make_url(database_url or get_settings().database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().resolve().parent / "signing.key"
    return Path.cwd() / "data" / "signing.key"


@dataclass(frozen=True)
class KeyRing:
    path: Path
    keys: dict[str, bytes]  # key id -> key, in file order
    current: str  # the newest key id (new signatures)


def read_keys(path: Path) -> KeyRing:
    keys: dict[str, bytes] = {}
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"Cannot read the signing key file {path}: {exc}") from None
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _KEY_LINE.match(line)
        if not m:
            raise SigningKeyError(f"{path}: line {n} is not '<key id> <64 hex digits>'.")
        keys[m.group(1)] = bytes.fromhex(m.group(2))
    if not keys:
        raise SigningKeyError(f"{path} holds no signing key.")
    return KeyRing(path, keys, list(keys)[-1])


def _new_key_line(existing: dict[str, bytes]) -> str:
    stamp = datetime.now().strftime("%Y%m%d")  # noqa: DTZ005 - a label only
    key_id = f"k{stamp}"
    n = 1
    while key_id in existing:
        n += 1
        key_id = f"k{stamp}-{n}"
    return f"{key_id} {secrets.token_hex(32)}\n"


def ensure_key_file(path: Path | None = None) -> tuple[Path, bool]:
    """Create the key file (mode 0600, one fresh key) when it is missing; (path, created)."""
    path = Path(path or default_key_path())
    if path.exists():
        read_keys(path)  # malformed: say so now, not at the next signature
        return path, False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile
        return path, False
    except OSError as exc:
        raise SigningKeyError(f"Cannot create the signing key file {path}: {exc.strerror}. "
                              f"Run `python -m kapnotes init-db` or set {KEY_FILE_ENV}.") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write("# KAPNotes signing keys: <key id> <key>. Keep apart from database backups.\n")
        fh.write(_new_key_line({}))
    return path, True


def rotate_key(path: Path | None = None) -> str:
    """Append a new key (new signatures use it; older ones keep verifying with theirs)."""
    path, _ = ensure_key_file(path)
    ring = read_keys(path)
    line = _new_key_line(ring.keys)
    with path.open("a", encoding="ascii") as fh:
        fh.write(line)
    return line.split()[0]


def keyring(create: bool = True) -> KeyRing:
    """The configured keys. ``create``: a missing file is made first (``init-db`` normally
    does it; a signature never fails for want of a key, and a key made anew leaves every
    older signature unverifiable, which verification reports)."""
    path = default_key_path()
    if create:
        ensure_key_file(path)
    return read_keys(path)


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\x1f".join(parts).encode("utf-8"), "sha256").hexdigest()


def note_mac_parts(note) -> tuple[str, ...]:
    """What a note's MAC covers: its id, who signed it when, and its content hash."""
    signed_at = note.signed_at.isoformat() if note.signed_at else ""
    return ("kapnotes-note-v1", str(note.id), str(note.signed_by_id), signed_at, content_hash(note))


def addendum_mac_parts(add) -> tuple[str, ...]:
    """An addendum's content hash (recomputed) covers its note, author, time and text."""
    return ("kapnotes-addendum-v1", str(add.note_id),
            text_hash(str(add.note_id), str(add.author_id), add.created_at.isoformat(), add.text))


def make_mac(parts: tuple[str, ...], ring: KeyRing | None = None) -> tuple[str, str]:
    """(mac, key id) under the newest key."""
    ring = ring or keyring()
    return _mac(ring.keys[ring.current], *parts), ring.current


def check_mac(parts: tuple[str, ...], mac: str | None, key_id: str | None, ring: KeyRing | None) -> str:
    """``"ok"``, ``"unsealed"`` (signed before MACs), ``"no_key"`` (its key is not in the key
    file) or ``"bad"`` (the content or the MAC was changed)."""
    if not mac:
        return "unsealed"
    if ring is None or key_id not in ring.keys:
        return "no_key"
    return "ok" if hmac.compare_digest(_mac(ring.keys[key_id], *parts), mac) else "bad"
