"""Bad input stops with one clear error naming the file, the key and what is allowed."""

import subprocess
import sys

import pytest

from opsrl.core import ConfigError, Field, validate
from opsrl.core.config import non_negative
from opsrl.registry import family, load_problem, load_solver


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


BASE = """family = "inventory"
lead_time = {L}
holding_cost = 1.0
shortage_cost = {p}
[demand]
distribution = "poisson"
mean = 5.0
"""


def test_valid_file_loads(tmp_path):
    prob = load_problem(write(tmp_path, "ok.toml", BASE.format(L=2, p=9.0)))
    assert prob.L == 2 and prob.p == 9.0 and prob.unmet == "lost_sales"


@pytest.mark.parametrize(
    "text, key, words",
    [
        (BASE.format(L=-1, p=9.0), "lead_time", "an integer from 0 to 1000"),
        (BASE.format(L=1, p=0.0), "shortage_cost", "a number > 0"),
        (BASE.format(L=1, p=-3.0), "shortage_cost", "a number > 0"),
        (BASE.format(L=1, p=9.0).replace("holding_cost = 1.0", "holding_cost = -1.0"), "holding_cost", ">= 0"),
        (BASE.format(L=1, p=9.0) + "colour = 3\n", "demand.colour", "allowed keys here: distribution, mean, std"),
        ("colour = 3\n" + BASE.format(L=1, p=9.0), "colour", "allowed keys here"),
        (BASE.format(L=1, p=9.0).replace("lead_time = 1", 'lead_time = "two"'), "lead_time", "expected an integer"),
        (BASE.format(L=1, p=9.0).replace('"poisson"', '"gamma"'), "demand.distribution", "'poisson', 'normal'"),
        (BASE.format(L=1, p=9.0).replace("mean = 5.0", "mean = nan"), "demand.mean", "NaN"),
        (BASE.format(L=1, p=9.0).replace('family = "inventory"', 'family = "bakery"'), "family", "inventory"),
    ],
)
def test_bad_problem_names_file_key_and_allowed(tmp_path, text, key, words):
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as e:
        load_problem(path)
    msg = str(e.value)
    assert str(path) in msg and f"'{key}'" in msg and words in msg


def test_missing_file_and_unknown_name():
    with pytest.raises(ConfigError, match="file not found"):
        load_problem("no/such/file.toml")
    with pytest.raises(ConfigError, match="did you mean inventory/lost_sales_p9_L4"):
        load_problem("inventory/lost_sales_p9_L5")


def test_bad_solver_option(tmp_path):
    fam = family("inventory")
    path = write(tmp_path, "s.toml", 'method = "hdpo"\n[options]\nlr = -1.0\n')
    with pytest.raises(ConfigError, match=r"key 'options.lr'.*positive learning rate"):
        load_solver(path, fam)
    path = write(tmp_path, "s2.toml", 'method = "simulated_annealing"\n')
    with pytest.raises(ConfigError, match=r"key 'method'.*allowed: .*hdpo"):
        load_solver(path, fam)
    path = write(tmp_path, "s3.toml", 'method = "hdpo"\n[policy]\nhidden = [64, 0]\n')
    from opsrl.nn import build_policy

    _, _, cfg = load_solver(path, fam)
    with pytest.raises(ConfigError, match=r"key 'policy.hidden'.*positive layer widths"):
        build_policy(load_problem("inventory/lost_sales_p4_L1"), cfg["policy"], str(path))


def test_solver_sets_problem_keys(tmp_path):
    """A solver file's [problem] table sets problem keys when it runs; the user's override wins; a key the
    problem rejects is reported against the solver file."""
    from opsrl.bench.runner import run
    from opsrl.registry import load_for_solver

    path = write(tmp_path, "s.toml", 'method = "base_stock"\n[problem.test]\nscenarios = 7\n')
    _, _, cfg = load_solver(path, family("inventory"))
    assert cfg["problem"] == {"test.scenarios": 7}
    assert load_for_solver("inventory/lost_sales_p4_L1", cfg).test_scenarios == 7
    assert load_for_solver("inventory/lost_sales_p4_L1", cfg, {"test.scenarios": 9}).test_scenarios == 9
    rec = run(
        "inventory/lost_sales_p4_L1",
        path,
        progress=False,
        trace=False,
        solver_overrides={"options.dev_scenarios": 64, "options.dev_periods": 50},
        problem_overrides={"test.periods": 150},
    )
    assert rec["test"]["n"] == 7 and rec["config"]["problem"]["test"]["scenarios"] == 7
    bad = write(tmp_path, "bad.toml", 'method = "base_stock"\n[problem]\n"test.scenarios" = -3\n')
    _, _, cfg = load_solver(bad, family("inventory"))
    with pytest.raises(ConfigError, match=r"bad.toml: key 'problem.test.scenarios': rejected by .*lost_sales_p4_L1"):
        load_for_solver("inventory/lost_sales_p4_L1", cfg)


def test_validate_fills_defaults_and_checks():
    schema = {"a": Field(int, 3, allowed="an integer >= 0", check=non_negative), "b": Field(float)}
    assert validate({"b": 1}, schema, "f") == {"a": 3, "b": 1.0}
    with pytest.raises(ConfigError, match="key 'b': missing"):
        validate({}, schema, "f")


def test_cli_bad_input_exits_non_zero_and_keeps_store(tmp_path):
    store = tmp_path / "s.sqlite"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsrl.cli",
            "run",
            "inventory/lost_sales_p4_L1",
            "optimal_dp",
            "--store",
            str(store),
            "--json",
            "-q",
            "--problem-set",
            "test.scenarios=64",
            "--problem-set",
            "test.periods=200",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    before = store.read_bytes()
    bad = write(tmp_path, "bad.toml", BASE.format(L=-2, p=9.0))
    r = subprocess.run(
        [sys.executable, "-m", "opsrl.cli", "run", str(bad), "optimal_dp", "--store", str(store)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "key 'lead_time'" in r.stderr and str(bad) in r.stderr
    assert store.read_bytes() == before
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsrl.cli",
            "run",
            "inventory/lost_sales_p4_L1",
            "hdpo_mlp",
            "--set",
            "lr=0",
            "--store",
            str(store),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "options.lr" in r.stderr
    assert store.read_bytes() == before


# --- the one place numbers are checked (issue 16) -------------------------------------------------
@pytest.mark.parametrize(
    "value, words",
    [
        (float("inf"), "expected a finite number"),
        (float("-inf"), "expected a finite number"),
        (float("nan"), "NaN is not allowed"),
        (1e308, r"at most 1e\+15"),
        (10**400, r"401-digit .* at most 1e\+15"),
    ],
)
def test_every_float_is_finite_and_bounded(value, words):
    with pytest.raises(ConfigError, match=words) as e:
        validate({"x": value}, {"x": Field(float)}, "f.toml")
    assert e.value.source == "f.toml" and e.value.key == "x"


@pytest.mark.parametrize(
    "value, ok",
    [
        (2**31 - 1, True),
        (2**31, False),
        (-(2**31), False),
        (1e12, False),
        (3.0, True),
        (float("inf"), False),
        (2.5, False),
    ],
)
def test_every_integer_is_bounded(value, ok):
    from opsrl.core.config import INT_LIMIT

    schema = {"n": Field(int)}
    if ok:
        assert validate({"n": value}, schema, "f")["n"] == int(value) and abs(int(value)) <= INT_LIMIT
    else:
        with pytest.raises(ConfigError):
            validate({"n": value}, schema, "f")


def test_field_max_max_len_and_size_helper():
    from opsrl.core.config import size

    schema = {"n": size(1, 100), "w": size([8], 64, item=True), "l": Field(list, [], max_len=2), "u": Field(list, [])}
    assert validate({"n": 100, "w": [64, 1], "l": [1, 2]}, schema, "f") == {
        "n": 100,
        "w": [64, 1],
        "l": [1, 2],
        "u": [],
    }
    for section, key, words in [
        ({"n": 101}, "n", "at most 100"),
        ({"n": 0}, "n", "from 1 to 100"),
        ({"w": [8, 65]}, "w", "65 is too large; at most 64"),
        ({"l": [1, 2, 3]}, "l", "3 items are too many; at most 2"),
        ({"u": [1.0, [2.0, float("inf")]]}, "u[1][1]", "finite"),
    ]:
        with pytest.raises(ConfigError, match=words) as e:
            validate(section, schema, "f")
        assert e.value.key == key


def test_memory_estimate_names_the_key(monkeypatch):
    from opsrl.core import config

    monkeypatch.setattr(config, "available_memory", lambda device="cpu": 1000.0)
    config.check_memory(500.0, "f", "test.scenarios", "the test set")  # half of what is free: allowed
    with pytest.raises(ConfigError, match="lower 'test.scenarios'") as e:
        config.check_memory(501.0, "f", "test.scenarios", "the test set")
    assert e.value.key == "test.scenarios"
    prob = load_problem("inventory/lost_sales_p4_L1")
    exact = prob.sample(7, "test", 0, 33)
    nbytes = sum(v.numel() * v.element_size() for v in exact.data.values())
    assert config.scenario_bytes(prob, 7, 33, "test") == pytest.approx(nbytes, rel=1e-9)


def test_non_utf8_file_is_named(tmp_path):
    p = tmp_path / "latin.toml"
    p.write_bytes(b'family = "inventory"\n# caf\xe9\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at line 2\)") as e:
        load_problem(p)
    assert e.value.source == str(p)
