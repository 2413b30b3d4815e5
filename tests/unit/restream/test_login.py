"""The restream login: made once, kept 0600 in a 0700 directory, the same ever after."""

from __future__ import annotations

import os
import stat

import pytest

from appliance.core.errors import DataLoss, FailedPrecondition
from appliance.restream.login import PASSWORD_LENGTH, RESTREAM_USER, RestreamLogin


def test_the_login_is_made_at_first_use_private_and_stable(tmp_path):
    path = tmp_path / "secrets" / "restream" / "login.json"
    first = RestreamLogin(path).ensure()
    assert first.username == RESTREAM_USER and len(first.password) == PASSWORD_LENGTH
    assert first.password.isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert RestreamLogin(path).ensure() == first == RestreamLogin(path).require()
    assert os.listdir(path.parent) == ["login.json"]   # no temporary file left behind


def test_two_logins_are_different(tmp_path):
    first, second = (RestreamLogin(tmp_path / name).ensure() for name in ("a.json", "b.json"))
    assert first.password != second.password


def test_a_racing_second_creator_keeps_the_first_password(tmp_path):
    path = tmp_path / "login.json"
    first = RestreamLogin(path)._create()
    assert RestreamLogin(path)._create() == first


def test_showing_the_login_never_makes_one(tmp_path):
    path = tmp_path / "login.json"
    with pytest.raises(FailedPrecondition, match="first starts"):
        RestreamLogin(path).require()
    assert not path.exists()


@pytest.mark.parametrize("text", ["{", "[]", '{"username": "restream"}',
                                  '{"username": "restream", "password": ""}'])
def test_a_damaged_login_file_is_a_clear_error(tmp_path, text):
    path = tmp_path / "login.json"
    path.write_text(text)
    with pytest.raises(DataLoss, match="restream login"):
        RestreamLogin(path).ensure()


def test_the_password_does_not_show_in_a_repr(tmp_path):
    login = RestreamLogin(tmp_path / "login.json").ensure()
    assert login.password not in repr(login) and login.password not in str(login)
