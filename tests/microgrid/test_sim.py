"""The simulator against hand computations; the checker catches unshielded violations."""

import pytest
import torch

from opsrl.core import ConfigError, rollout
from opsrl.microgrid.constraints import check_rollout, check_states
from opsrl.microgrid.rainflow import OnlineRainflow, rainflow_damage

from .conftest import OFF, RUN, WARM, fixed_scenario, make_problem


def raw(problem, cmds, battery_kw=0.0, wind_cap=1.0, shed=0.0):
    """A constant raw action for the unshielded problem."""
    p = problem.p
    c = torch.tensor(cmds, dtype=torch.float32)

    def policy(state, t):
        B = state["soc"].shape[0]
        a = torch.cat(
            [
                c.expand(B, p.G),
                torch.full((B, 1), (battery_kw / p.b_power + 1) / 2),
                torch.full((B, 1), wind_cap),
                torch.full((B, 1), shed),
            ],
            1,
        )
        return a

    return policy


def test_fuel_of_a_fixed_dispatch_by_hand():
    # one genset running at a constant 300 kW net load for 10 minutes, battery idle, no wind:
    # fuel = (0.25 * 300 + 10) L/h * 10/60 h = 14.1667 L; cost = 1.5 per litre; no degradation
    prob = make_problem(shielded=False, periods=10)
    sc = fixed_scenario(prob, [300.0] * 11, [0.0] * 11, mode0=[[RUN, OFF]], run0=[[60.0, 0.0]])
    traj = rollout(prob, raw(prob, [1, 0]), sc, record=True)
    fuel = sum(s["out_fuel"].item() for s in traj.states[1:]) + traj.final_state["out_fuel"].item()
    assert fuel == pytest.approx(85.0 * 10 / 60, rel=1e-5)
    assert traj.costs.sum().item() == pytest.approx(1.5 * 85.0 * 10 / 60, rel=1e-5)
    assert traj.final_state["out_gen"][0].tolist() == pytest.approx([300.0, 0.0])


def test_two_gensets_share_equally_and_battery_covers_above_rated():
    # 700 kW demand, 100 kW wind, both running: 300 kW each. Then 900 kW, no wind: 400 each, battery 100.
    prob = make_problem(shielded=False, periods=2, demand={"peak_kw": 800.0})
    sc = fixed_scenario(prob, [700.0, 700.0, 900.0], [100.0, 100.0, 0.0], mode0=[[RUN, RUN]], run0=[[60.0, 60.0]])
    traj = rollout(prob, raw(prob, [1, 1]), sc, record=True)
    s1, s2 = traj.states[1], traj.final_state
    assert s1["out_gen"][0].tolist() == pytest.approx([300.0, 300.0])
    assert s2["out_gen"][0].tolist() == pytest.approx([400.0, 400.0])
    assert s2["out_battery"].item() == pytest.approx(100.0)
    # state of charge falls by 100 kW for one minute on a 1000 kWh battery
    assert (s1["soc"] - s2["soc"]).item() == pytest.approx(100.0 / 60 / 1000, rel=1e-4)


def test_warmup_then_running_and_cooldown_by_hand():
    prob = make_problem(shielded=False, periods=12)
    sc = fixed_scenario(prob, [200.0] * 13, [0.0] * 13, mode0=[[OFF, OFF]])
    traj = rollout(prob, raw(prob, [1, 0]), sc, record=True)
    outs = traj.states[1:] + [traj.final_state]
    assert [o["out_mode"][0, 0].item() for o in outs[:5]] == [WARM, WARM, WARM, RUN, RUN]
    assert [o["out_gen"][0, 0].item() for o in outs[:3]] == [100.0] * 3
    assert outs[3]["out_gen"][0, 0].item() == pytest.approx(200.0)
    # during warm-up the battery supplies the other 100 kW
    assert outs[0]["out_battery"].item() == pytest.approx(100.0)


def test_energy_balance_and_checker_on_unshielded_random_actions():
    prob = make_problem(shielded=False, periods=120)
    sc = prob.sample(64, "dev", 3)
    g = torch.Generator().manual_seed(1)
    pol = lambda s, t: torch.rand(s["soc"].shape[0], prob.p.G + 3, generator=g)
    traj = rollout(prob, pol, sc, record=True)
    outs = traj.states[1:] + [traj.final_state]
    for o in outs:
        lhs = o["out_demand"] - o["out_unserved"]
        rhs = o["out_wind_used"] + o["out_gen"].sum(1) + o["out_battery"] - o["out_dump"]
        assert torch.allclose(lhs, rhs, atol=1e-2)
    checker = check_states(prob.p, sc["history"], traj.states + [traj.final_state])
    # random raw commands break the genset rules and shed load: the checker must see it
    assert checker.counts["genset1.min_run_time"] > 0
    assert checker.counts["genset1.warmup"] > 0 or checker.counts["genset1.cooldown"] > 0
    assert checker.counts["demand.no_shedding"] > 0
    assert checker.counts["wind.curtail_only_surplus"] > 0
    assert checker.counts["energy_balance"] == 0 and checker.counts["battery.dynamics"] == 0
    assert checker.counts["genset.equal_share"] == 0 and checker.counts["genset.min_load"] == 0


def test_checker_sees_battery_driven_out_of_band():
    prob = make_problem(shielded=False, periods=30)
    sc = fixed_scenario(prob, [300.0] * 31, [0.0] * 31, soc0=0.12, mode0=[[RUN, OFF]], run0=[[60.0, 0.0]])
    checker = check_rollout(prob, raw(prob, [1, 0], battery_kw=300.0), sc)
    assert checker.counts["battery.reserve_only"] > 0


def test_rainflow_matches_published_example_and_online_counter():
    # ASTM E1049 example as in the `rainflow` package docs: cycles (3, .5), (4, 1.5), (6, .5), (8, 1), (9, .5)
    series = [-2, 1, -3, 5, -1, 3, -4, 4, -2]
    expect_k1 = 0.5 * 3 + 1.5 * 4 + 0.5 * 6 + 1.0 * 8 + 0.5 * 9
    expect_k2 = 0.5 * 9 + 1.5 * 16 + 0.5 * 36 + 1.0 * 64 + 0.5 * 81
    assert rainflow_damage(series, 1.0) == pytest.approx(expect_k1)
    assert rainflow_damage(series, 2.0) == pytest.approx(expect_k2)
    # k = 1: half the total variation
    assert expect_k1 == pytest.approx(0.5 * sum(abs(b - a) for a, b in zip(series, series[1:])))
    g = torch.Generator().manual_seed(0)
    B, T = 16, 200
    x = torch.cumsum(torch.randn(B, T, generator=g, dtype=torch.float64), 1)
    x[:, 50:60] = x[:, 49:50]  # flat stretches
    for k in (1.0, 1.5, 2.0):
        rf = OnlineRainflow(k, stack=64)
        st = rf.init(x[:, 0])
        total = torch.zeros(B, dtype=torch.float64)
        for t in range(1, T):
            st, dmg = rf.step(st, x[:, t], final=t == T - 1)
            total += dmg
        ref = torch.tensor([rainflow_damage(x[i].tolist(), k) for i in range(B)], dtype=torch.float64)
        assert torch.allclose(total, ref, rtol=1e-9, atol=1e-9)
    rf = OnlineRainflow(2.0, stack=16)
    xs = torch.tensor(series, dtype=torch.float64)[None]
    st = rf.init(xs[:, 0])
    total = 0.0
    for t in range(1, xs.shape[1]):
        st, dmg = rf.step(st, xs[:, t], final=t == xs.shape[1] - 1)
        total += dmg.item()
    assert total == pytest.approx(expect_k2)


def test_degradation_cost_in_evaluation_is_the_exact_rainflow_count():
    prob = make_problem(periods=240)
    sc = prob.sample(4, "dev", 0, periods=240)
    g = torch.Generator().manual_seed(2)
    pol = lambda s, t: torch.rand(s["soc"].shape[0], 2, generator=g)
    with torch.no_grad():
        traj = rollout(prob, pol, sc, record=True)
    states = traj.states + [traj.final_state]
    socs = torch.stack([s["soc"] for s in states], 1).double()
    deg = torch.stack([s["out_degradation"] for s in states[1:]], 1).double().sum(1)
    p = prob.p
    for i in range(4):
        ref = p.repl_cost / p.cycle_life * rainflow_damage(socs[i].tolist(), p.depth_exp)
        assert deg[i].item() == pytest.approx(ref, rel=1e-3, abs=1e-4)


def test_bad_config_names_file_key_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"<test>: key 'genset.rated_kww': unknown key"):
        make_problem(genset={"rated_kww": 1.0})
    with pytest.raises(ConfigError, match=r"key 'battery.charge_efficiency'.*\(0, 1\]"):
        make_problem(battery={"charge_efficiency": 1.5})
    with pytest.raises(ConfigError, match=r"key 'demand.peak_kw'"):
        make_problem(demand={"peak_kw": 900.0})
    with pytest.raises(ConfigError, match=r"key 'periods'"):
        make_problem(periods=5000)
    with pytest.raises(ConfigError, match=r"key 'data.path'"):
        make_problem(data={"source": "csv"})


def test_csv_input_and_its_errors(tmp_path):
    prob = make_problem()
    sc = prob.sample(2, "dev", 0)
    rows = ["demand_kw,wind_kw"]
    for day in range(2):
        for m in range(1440):
            rows.append(f"{sc['demand'][day, m + 1].item():.3f},{sc['wind'][day, m + 1].item():.3f}")
    rows4 = rows + rows[1:]
    path = tmp_path / "series.csv"
    path.write_text("\n".join(rows4) + "\n")
    fp = make_problem(data={"source": "csv", "path": str(path), "test_days": 1, "dev_days": 1})
    test = fp.test_set()
    assert test.n == fp.test_scenarios and test["demand"].shape[1] == 1440 + 1 + max(fp.leads)
    # the test day is the file's last day (the second synthetic day), minute 0 at index 1
    assert test["demand"][0, 1].item() == pytest.approx(sc["demand"][1, 1].item(), abs=1e-3)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(["demand_kw,wind"] + ["1,2"] * 1440) + "\n")
    with pytest.raises(ConfigError, match="lacks column"):
        make_problem(data={"source": "csv", "path": str(bad)})
    nan = tmp_path / "nan.csv"
    nan.write_text("\n".join(["demand_kw,wind_kw"] + ["1,2"] * 100 + ["nan,2"] + ["1,2"] * 1339) + "\n")
    with pytest.raises(ConfigError, match="NaN"):
        make_problem(data={"source": "csv", "path": str(nan), "test_days": 1, "dev_days": 1})


def test_parquet_input(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    n = 4 * 1440
    frame = pd.DataFrame({"demand_kw": [300.0 + (i % 1440) / 10 for i in range(n)], "wind_kw": [50.0] * n})
    path = tmp_path / "s.parquet"
    frame.to_parquet(path)
    prob = make_problem(data={"source": "parquet", "path": str(path), "test_days": 1, "dev_days": 1})
    sc = prob.test_set()
    assert sc["demand"][0, 1].item() == pytest.approx(300.0)
    assert sc["wind"][0, 100].item() == pytest.approx(50.0)
