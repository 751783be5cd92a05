"""Password rules per NIST SP 800-63B (issue 20): the bundled common list, names, variety."""

from __future__ import annotations

import gzip

import pytest

from kapnotes import auth, passwords
from kapnotes.errors import ValidationError


def test_the_bundled_list_is_there_with_its_licence():
    assert passwords.COMMON_LIST.exists()
    assert (passwords.COMMON_LIST.parent / "common-passwords.LICENSE").exists()
    assert "Licence" in (passwords.COMMON_LIST.parent / "README.md").read_text()
    with gzip.open(passwords.COMMON_LIST, "rt") as f:
        assert sum(1 for _ in f) > 19000
    assert "password1234" in passwords.common_passwords()


@pytest.mark.parametrize("password", ["password1234", "qwertyuiop123", "iloveyou1234", "Password1234",
                                      "monkey123456!", "football2026!"])
def test_common_or_breached_passwords_are_refused(password):
    with pytest.raises(ValidationError) as exc:
        auth.validate_password(password, "newbie", "New Bie")
    assert ("common or breached" in exc.value.errors["password"]
            or "different characters" in exc.value.errors["password"])


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "abababababab", "121212121212", "zzzzzzzzzzzzzzzzzzzz"])
def test_a_repeated_character_or_pattern_is_refused(password):
    with pytest.raises(ValidationError, match="different characters"):
        auth.validate_password(password)


@pytest.mark.parametrize("password", ["tina.torres-2026", "TorresClinic99!", "my-name-is-tina!", "Tina Torres 1234",
                                      "tinatorres2026"])
def test_passwords_built_from_the_username_or_name_are_refused(password):
    with pytest.raises(ValidationError, match="your username, your name or the clinic"):
        auth.validate_password(password, "tina", "Tina Torres")


def test_passwords_built_from_the_clinic_name_are_refused(monkeypatch):
    monkeypatch.setenv("KAPNOTES_CLINIC_NAME", "Riverbend Wellness Clinic")
    with pytest.raises(ValidationError, match="clinic"):
        auth.validate_password("Riverbend#2026!", "tina", "Tina Torres")
    with pytest.raises(ValidationError, match="clinic"):
        auth.validate_password("wellness-for-all-7", "tina", "Tina Torres")


@pytest.mark.parametrize("password", ["correct horse battery staple", "plum-river-7", "a-long-enough-password",
                                      "granite lantern orbit"])
def test_ordinary_long_phrases_pass(password):
    auth.validate_password(password, "tina", "Tina Torres")  # no composition rules (NIST)


def test_every_reason_is_named_at_once():
    found = passwords.problems("tinatina", "tina", "Tina Torres")
    assert any("12 characters" in f for f in found) and any("username" in f for f in found)


def test_create_user_and_set_password_apply_the_rules(session, clinic):
    with pytest.raises(ValidationError, match="common or breached"):
        auth.create_user(session, None, "newbie", "therapist", "New Bie", "password1234")
    with pytest.raises(ValidationError, match="your username"):
        auth.create_user(session, None, "newbie", "therapist", "New Bie", "newbie-newbie-1")
    with pytest.raises(ValidationError, match="different characters"):
        auth.set_password(session, clinic.ada, clinic.tina.id, "aaaaaaaaaaaa")
    with pytest.raises(ValidationError, match="your username"):
        auth.set_password(session, clinic.ada, clinic.tina.id, "Tina-Torres-2026")


def test_temporary_passwords_pass_the_rules_and_differ():
    made = {auth.temporary_password() for _ in range(20)}
    assert len(made) == 20
    for p in made:
        assert not passwords.problems(p) and len(p) == 19
