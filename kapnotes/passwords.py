"""Which new passwords to refuse, per NIST SP 800-63B: length, a list of common/breached
passwords, ones built from the person's own names or the clinic's, and too little variety.

No composition rules (NIST advises against them): a long phrase of ordinary words passes.
"""

from __future__ import annotations

import gzip
import re
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path

from kapnotes.config import get_settings
from kapnotes.errors import ValidationError

COMMON_LIST = Path(__file__).parent / "data" / "common-passwords.txt.gz"
MIN_DISTINCT = 5  # "aaaaaaaaaaaa", "abababababab" and "121212121212" are not passwords
# words too generic to count as "the clinic's name"
_GENERIC_WORDS = {"the", "and", "of", "clinic", "center", "centre", "health", "care", "group",
                  "practice", "medical", "services", "llc", "inc", "demo"}


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_LIST, "rt", encoding="utf-8") as f:
        return frozenset(line.strip() for line in f if line.strip())


def _is_common(lowered: str) -> bool:
    common = common_passwords()
    if lowered in common:
        return True
    # a listed password with digits or symbols added around it: "password1234!", "!!monkey2026"
    core = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", lowered)
    return len(core) >= 4 and core != lowered and core in common


def _context_words(username: str, full_name: str, clinic_name: str) -> list[str]:
    words = []
    if len(username.strip()) >= 3:
        words.append(username.strip().lower())
    for part in re.split(r"[\s.,_@-]+", username.lower() + " " + full_name.lower()):
        if len(part) >= 4:
            words.append(part)
    for part in re.split(r"[\W_]+", clinic_name.lower()):
        if len(part) >= 4 and part not in _GENERIC_WORDS:
            words.append(part)
    return words


def _built_from(lowered: str, whole: str, words: list[str]) -> bool:
    letters = re.sub(r"[\W\d_]+", "", lowered)
    for word in words:
        if word in lowered or (letters and word in letters):
            return True
    whole = re.sub(r"[\W_]+", "", whole.lower())
    return bool(whole) and SequenceMatcher(None, letters, whole).ratio() >= 0.7


def problems(password: str, username: str = "", full_name: str = "", clinic_name: str | None = None) -> list[str]:
    """Why this password would be refused, in words for the person choosing it (empty: fine)."""
    minimum = get_settings().min_password_length
    clinic_name = get_settings().clinic_name if clinic_name is None else clinic_name
    found = []
    if len(password) < minimum:
        found.append(f"Passwords need at least {minimum} characters.")
    if password.strip() != password or not password.strip():
        found.append("Passwords cannot start or end with spaces.")
    if len(password) > 256:
        found.append("Passwords can be at most 256 characters.")
    lowered = password.lower()
    if len(set(lowered)) < MIN_DISTINCT:
        found.append(f"Use at least {MIN_DISTINCT} different characters; "
                     "a repeated character or pattern is easy to guess.")
    if _is_common(lowered):
        found.append("This password is on a list of common or breached passwords. Choose another, "
                     "for example three or four unrelated words.")
    words = _context_words(username, full_name, clinic_name)
    if _built_from(lowered, username + full_name, words):
        found.append("Do not build a password from your username, your name or the clinic's name.")
    return found


def check(password: str, username: str = "", full_name: str = "", clinic_name: str | None = None) -> None:
    """Raise a ValidationError (field ``password``) naming every reason this password is refused."""
    found = problems(password, username, full_name, clinic_name)
    if found:
        raise ValidationError({"password": " ".join(found)})
