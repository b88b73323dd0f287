"""Who is the teacher, who owns what, and the quotas' numbers: the pure rules of roles.py."""
import os
import stat

import pytest

from nin_explorer.runs import roles
from nin_explorer.runs.roles import (TEACHER, Limits, QuotaError, RoleError, Visitor, check_quota,
                                     identify, is_teacher_token, public_error, single_user,
                                     teacher_token)

TOKEN = "s3cret-token-for-tests"
GARBAGE = ["", " ", "s3cret", TOKEN + " ", " " + TOKEN, TOKEN.upper(), TOKEN[:-1], "é" * 30,
           "\x00" + TOKEN, TOKEN * 100, "%00", "../../etc/passwd", None, 0, ["x"], b"bytes"]


def test_the_teacher_token_is_made_once_kept_private_and_survives_a_restart(tmp_path):
    first = teacher_token(tmp_path, environ={})
    path = tmp_path / roles.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 24 and teacher_token(tmp_path, environ={}) == first
    path.write_text("\x00garbage")                       # a damaged file: a new token
    second = teacher_token(tmp_path, environ={})
    assert second != first and teacher_token(tmp_path, environ={}) == second
    assert teacher_token(tmp_path, environ={roles.TOKEN_ENV: TOKEN}) == TOKEN
    assert roles.teacher_link(TOKEN, 8600) == f"http://localhost:8600/?teacher={TOKEN}"


@pytest.mark.parametrize("weak", ["short", "with space\n and a newline", "é" * 20])
def test_a_weak_token_in_the_environment_is_refused_with_a_sentence(tmp_path, weak):
    with pytest.raises(RoleError, match="at least 12 printable ASCII"):
        teacher_token(tmp_path, environ={roles.TOKEN_ENV: weak})


@pytest.mark.parametrize("given", GARBAGE)
def test_garbage_tokens_never_make_a_teacher(given):
    assert not is_teacher_token(given, TOKEN)
    who = identify(TOKEN, single=False, teacher_param=given)
    assert not who.is_teacher and who.id != TEACHER
    assert who.query == {"v": who.id} and len(who.id) >= 16
    assert not is_teacher_token(given, "")               # an empty token matches nothing


def test_the_right_token_makes_the_teacher_and_is_remembered():
    who = identify(TOKEN, single=False, teacher_param=TOKEN)
    assert (who.id, who.is_teacher, who.query) == (TEACHER, True, {"teacher": TOKEN})
    assert identify(TOKEN, single=False, remembered=who) == who      # a link without ?teacher=
    assert not identify("a-new-token-after-restart", single=False, remembered=who).is_teacher


@pytest.mark.parametrize("address,env,single", [
    ("127.0.0.1", {}, True), ("localhost", {}, True), ("::1", {}, True),
    ("127.0.0.1", {roles.TOKEN_ENV: TOKEN}, False), ("0.0.0.0", {}, False), ("", {}, False),
    (None, {}, False), ("192.168.1.10", {}, False)])
def test_one_user_at_home_is_the_teacher(address, env, single):
    assert single_user(address, env) is single
    who = identify(TOKEN, single_user(address, env))
    assert who.is_teacher is single and (who.query == {}) is single


def test_a_visitor_keeps_their_id_across_reloads_and_bad_ids_get_a_new_one():
    first = identify(TOKEN, single=False)
    again = identify(TOKEN, single=False, visitor_param=first.id)
    assert again == first and not first.is_teacher
    assert identify(TOKEN, single=False, remembered=first) == first
    for bad in ["short", "a" * 65, "x" * 20 + "!", TEACHER, "", None, ["a" * 20]]:
        fresh = identify(TOKEN, single=False, visitor_param=bad)
        assert fresh.id not in (bad, TEACHER) and fresh.id != first.id
    refused = identify(TOKEN, single=False, teacher_param="wrong", visitor_param=first.id)
    assert refused.refused_link and refused.id == first.id and "teacher" not in refused.query


def test_who_may_stop_what():
    assert roles.may_stop(TEACHER, "anyone") and roles.may_stop(TEACHER, None)
    assert roles.may_stop("v" * 20, "v" * 20)
    assert not roles.may_stop("v" * 20, "w" * 20) and not roles.may_stop("v" * 20, None)
    assert not roles.may_stop(None, None) and not roles.may_stop("", "")
    with pytest.raises(RoleError, match="Only the teacher can clear"):
        roles.check_teacher("v" * 20, "clear the queue")


def test_quotas_name_their_limit_and_the_variable_that_sets_it():
    limits = Limits(max_queued_per_visitor=4, max_queued=50, max_ablation_runs=24)
    check_quota(limits, "v" * 20, 1, 49, 3)
    with pytest.raises(QuotaError, match=r"at most 4 at once \(NIN_EXPLORER_MAX_QUEUED_PER_"):
        check_quota(limits, "v" * 20, 1, 10, 4)
    with pytest.raises(QuotaError, match=r"at most 50 \(NIN_EXPLORER_MAX_QUEUED\)"):
        check_quota(limits, TEACHER, 1, 50, 0)
    check_quota(limits, TEACHER, 10, 40, 40)             # no per-visitor limit for the teacher
    check_quota(limits, None, 10, 40, 40)                # nor for the CLI
    with pytest.raises(QuotaError, match="25 runs"):
        roles.check_ablation_size(limits, 25)


def test_limits_come_from_the_environment_and_garbage_is_ignored():
    assert Limits.from_env({}) == Limits()
    env = {"NIN_EXPLORER_MAX_QUEUED_PER_VISITOR": "2", "NIN_EXPLORER_MAX_QUEUED": "500",
           "NIN_EXPLORER_MAX_ABLATION_RUNS": "12"}
    assert Limits.from_env(env) == Limits(2, 500, 12)
    for bad in ["0", "-3", "2.5", "1e3", "", " 4", "٣", "99999", "many"]:
        assert Limits.from_env({"NIN_EXPLORER_MAX_QUEUED": bad}) == Limits()
    assert Limits.from_env(None) == Limits.from_env(dict(os.environ))


def test_the_sidebar_line_says_who_you_are_and_what_you_may_do():
    limits = Limits(max_queued_per_visitor=4)
    teacher = roles.describe(Visitor(TEACHER, True, {}), limits, 0)
    assert teacher.startswith("You are the teacher") and "stop any run" in teacher
    visitor = roles.describe(Visitor("v" * 20, False, {}), limits, 3)
    assert visitor.startswith("You are a visitor") and "3 of 4 queued" in visitor


def test_visitors_read_only_the_first_line_of_an_error():
    error = "The worker exited with code 1.\nTraceback (most recent call last):\n  File \"/srv\""
    assert public_error(error) == "The worker exited with code 1."
    assert public_error(None) == public_error("  \n ") == "no error text"
    assert len(public_error("x" * 10_000)) == 300


def test_the_cli_prints_the_teacher_link_that_make_run_shows(tmp_path, capsys, monkeypatch):
    from nin_explorer.cli import main
    monkeypatch.delenv(roles.TOKEN_ENV, raising=False)
    assert main(["teacher-link", "--home", str(tmp_path), "--port", "8600"]) == 0
    token = teacher_token(tmp_path, environ={})
    assert f"http://localhost:8600/?teacher={token}" in capsys.readouterr().out
    monkeypatch.setenv(roles.TOKEN_ENV, "short")
    assert main(["teacher-link", "--home", str(tmp_path)]) == 2
    assert "at least 12" in capsys.readouterr().err
