"""Strict environment: every MSCOMM_ variable is range-checked (a bad value is refused with an
error naming the variable and its valid values), and a set MSCOMM_ variable that mscomm does not
know gets a warning naming the nearest known one.

The checks run in processes of their own (the environment is read when a communicator is made),
each bounded by a timeout; single-rank communicators leave nothing in /dev/shm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mscomm import _core, env

MAKE_COMM = '''
import json, warnings
import mscomm
warnings.simplefilter("always")
out = {}
with warnings.catch_warnings(record=True) as caught:
    try:
        comm = mscomm.Communicator(0, 1, mscomm.create_unique_id())
        comm.close()
        out["error"] = None
    except Exception as e:
        out["error"] = type(e).__name__
        out["message"] = str(e)
out["warnings"] = [str(w.message) for w in caught]
print(json.dumps(out))
'''


def make_comm(**variables: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MSCOMM_")}
    environ.update(variables)
    environ["MSCOMM_JOB_TAG"] = os.environ.get("MSCOMM_JOB_TAG", "envtest")
    p = subprocess.run([sys.executable, "-c", MAKE_COMM], env=environ, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


BAD_VALUES = [
    ("MSCOMM_ONESHOT_MAX_BYTES", "-5", "an integer in 0..1099511627776 (bytes)"),
    ("MSCOMM_ONESHOT_MAX_BYTES", "32k", "an integer in 0.."),
    ("MSCOMM_SHM_SLOT_BYTES", "100", "an integer in 4096..1073741824 (bytes)"),
    ("MSCOMM_TCP_SLOT_BYTES", "1e6", "an integer in 4096.."),
    ("MSCOMM_TIMEOUT", "0", "a number in 0.001..31536000 (seconds)"),
    ("MSCOMM_TIMEOUT", "-1", "a number in 0.001.."),
    ("MSCOMM_SHUTDOWN_TIMEOUT", "soon", "a number in 0.."),
    ("MSCOMM_FORCE_TCP", "2", "0 or 1"),
    ("MSCOMM_CMA", "maybe", "0 or 1"),
    ("MSCOMM_SPIN", "fast", "auto or an integer in 0..2147483647"),
    ("MSCOMM_SPIN", "-3", "auto or an integer"),
    ("MSCOMM_PORT_OFFSET", "70000", "an integer in 0..65535"),
    ("MSCOMM_MAX_FRAME_BYTES", "10", "an integer in 4096.."),
    ("MSCOMM_DIRECT_MIN_BYTES", "99999999999999", "an integer in 0..1099511627776"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,value,valid", BAD_VALUES, ids=[f"{n}={v}" for n, v, _ in BAD_VALUES])
def test_env_bad_value_is_refused_naming_variable_and_range(name, value, valid):
    res = make_comm(**{name: value})
    assert res["error"] == "InvalidArgument", res
    assert f"{name}='{value}'" in res["message"] and valid in res["message"], res["message"]


@pytest.mark.timeout(60)
def test_env_every_bad_variable_is_named_at_once():
    res = make_comm(MSCOMM_ONESHOT_MAX_BYTES="-5", MSCOMM_TIMEOUT="never")
    assert res["error"] == "InvalidArgument", res
    assert "MSCOMM_ONESHOT_MAX_BYTES" in res["message"] and "MSCOMM_TIMEOUT" in res["message"], res


GOOD_VALUES = [("MSCOMM_ONESHOT_MAX_BYTES", "0"), ("MSCOMM_SPIN", "auto"), ("MSCOMM_SPIN", "100"),
               ("MSCOMM_FORCE_TCP", "true"), ("MSCOMM_TIMEOUT", "2.5"), ("MSCOMM_SHUTDOWN_TIMEOUT", "0"),
               ("MSCOMM_DEBUG", ""), ("MSCOMM_HOST_ID", "any text at all")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,value", GOOD_VALUES, ids=[f"{n}={v}" for n, v in GOOD_VALUES])
def test_env_valid_value_is_accepted(name, value):
    res = make_comm(**{name: value})
    assert res["error"] is None, res
    assert res["warnings"] == [], res


MISSPELLED = [("MSCOMM_ONESHOT_MAX_BYTE", "MSCOMM_ONESHOT_MAX_BYTES"), ("MSCOMM_TIMEOUTS", "MSCOMM_TIMEOUT"),
              ("MSCOMM_FORCETCP", "MSCOMM_FORCE_TCP"), ("MSCOMM_ALLREDUCE_ALGORITHM", "MSCOMM_ALLREDUCE_ALGO")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("wrong,right", MISSPELLED, ids=[w for w, _ in MISSPELLED])
def test_env_unknown_variable_warns_naming_nearest_known(wrong, right):
    res = make_comm(**{wrong: "1"})
    assert res["error"] is None, res
    assert len(res["warnings"]) == 1, res
    assert wrong in res["warnings"][0] and f"did you mean {right}?" in res["warnings"][0], res


@pytest.mark.timeout(60)
def test_env_unknown_variable_far_from_any_points_to_docs():
    res = make_comm(MSCOMM_ZZZZZZ="1")
    assert res["error"] is None and len(res["warnings"]) == 1, res
    assert "MSCOMM_ZZZZZZ" in res["warnings"][0] and "docs/environment.md" in res["warnings"][0], res


def test_env_every_registered_variable_has_a_rule():
    missing = [name for name, _, _ in env.registry() if not _core.env_valid_values(name)]
    assert missing == [], "add a rule in csrc/src/core/env_rules.cpp for each of these"


def test_env_defaults_satisfy_their_rules():
    for name, default, _ in env.registry():
        if default:
            _core.env_check_value(name, default)


def test_env_python_get_checks_value(monkeypatch):
    monkeypatch.setenv("MSCOMM_PORT_OFFSET", "-1")
    with pytest.raises(ValueError, match=r"MSCOMM_PORT_OFFSET='-1' is not valid: expected an integer in 0..65535"):
        env.get("MSCOMM_PORT_OFFSET")


def test_env_page_lists_valid_values():
    page = env.markdown()
    assert "| Valid values |" in page
    assert "an integer in 0..1099511627776 (bytes)" in page
