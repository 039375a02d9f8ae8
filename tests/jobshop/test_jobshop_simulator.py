"""The batched simulator: schedules validated independently, generation schemes, costs, noise, config."""

import math

import pytest
import torch
from jobshop_helpers import is_active, is_non_delay, run_rules

from opsrl.core import ConfigError, rollout
from opsrl.jobshop import check, run_policy, schedules
from opsrl.jobshop import instances as I
from opsrl.jobshop import simulator as S
from opsrl.jobshop.rules import RULES, DispatchRule


@pytest.mark.parametrize("schedule", ["non_delay", "active"])
def test_every_rule_schedule_is_valid_on_every_standard_instance(standard, schedule):
    """All 7 rules x 242 instances in one mixed-size batch; each schedule passes the independent validator."""
    out = run_rules(standard, list(RULES), schedule)
    for rule, rows in out.items():
        for inst, (ms, start, end) in zip(standard, rows):
            check.assert_valid(inst.machine, inst.duration, start, end, ms, f"{rule}/{schedule}/{inst.name}")
            assert ms >= I.bounds(inst.name)["lower_bound"], (rule, inst.name)


def gt_reference(inst, rule):
    """Giffler-Thompson in plain Python: conflict set on the machine of the earliest completion."""
    J = inst.jobs
    nxt, jr, mr = [0] * J, [0.0] * J, {}
    start = [[0.0] * len(r) for r in inst.machine]
    for _ in range(inst.operations):
        cand = [j for j in range(J) if nxt[j] < len(inst.machine[j])]
        est = {j: max(jr[j], mr.get(inst.machine[j][nxt[j]], 0.0)) for j in cand}
        ect = {j: est[j] + inst.duration[j][nxt[j]] for j in cand}
        j_star = min(cand, key=lambda j: (ect[j], j))
        m_star = inst.machine[j_star][nxt[j_star]]
        conflict = [j for j in cand if inst.machine[j][nxt[j]] == m_star and est[j] < ect[j_star]] or [j_star]
        rem = {j: sum(inst.duration[j][nxt[j] :]) for j in conflict}
        key = {"spt": lambda j: inst.duration[j][nxt[j]], "mwkr": lambda j: -rem[j], "fifo": lambda j: jr[j]}[rule]
        j = min(conflict, key=lambda j: (key(j), j))
        start[j][nxt[j]] = est[j]
        end = est[j] + inst.duration[j][nxt[j]]
        jr[j], mr[m_star] = end, end
        nxt[j] += 1
    return max(jr), start


@pytest.mark.parametrize("rule", ["spt", "mwkr", "fifo"])
def test_active_generation_matches_plain_giffler_thompson(rule):
    insts = [I.load(n) for n in ("ft06", "ft10", "la01", "la16", "ta01", "abz7")]
    out = run_rules(insts, [rule], "active")[rule]
    for inst, (ms, start, end) in zip(insts, out):
        ref_ms, ref_start = gt_reference(inst, rule)
        assert ms == ref_ms, inst.name
        assert start == ref_start, inst.name
        assert is_active(inst, start, end), inst.name


def test_non_delay_and_active_properties():
    insts = [I.load(n) for n in ("ft06", "la01", "ta01", "orb07")]  # orb07 has a zero-length operation
    nd = run_rules(insts, ["spt", "lpt", "fifo"], "non_delay")
    act = run_rules(insts, ["spt", "lpt", "fifo"], "active")
    for rule in ("spt", "lpt", "fifo"):
        for inst, (_, s, e), (_, s2, e2) in zip(insts, nd[rule], act[rule]):
            assert is_non_delay(inst, s, e), (rule, inst.name)
            assert is_active(inst, s, e) and is_active(inst, s2, e2), (rule, inst.name)
    # some active schedule of these is not non-delay (the two schemes differ)
    assert any(not is_non_delay(inst, s, e) for rule in act for inst, (_, s, e) in zip(insts, act[rule]))


def test_costs_sum_to_makespan_and_padding_is_free():
    p = S.JobShop([I.load("ft06"), I.load("la01"), I.load("ta01")])
    sc = p.test_set()
    assert p.periods == 225 and sc.n == 3
    traj = rollout(p, DispatchRule("mwkr"), sc)
    ms = traj.final_state["makespan"]
    assert torch.equal(traj.costs.sum(1), ms)
    assert (traj.costs[0, 36:] == 0).all() and (traj.costs[1, 50:] == 0).all()  # finished: zero-cost no-ops
    alone = [
        rollout(S.JobShop([i]), DispatchRule("mwkr"), S.JobShop([i]).test_set()).costs.sum().item() for i in p.instances
    ]
    assert ms.tolist() == alone  # mixed sizes in one batch change nothing
    assert (traj.costs >= 0).all()
    m = S.metrics(traj.final_state)
    assert math.isnan(m["tardiness"][0]) and m["flow_time"][0] == sum(
        max(e) for e in schedules(traj.final_state)[0]["end"]
    )


def test_mask_is_enforced():
    p = S.JobShop([I.load("ft06")])
    sc = p.test_set()
    st = p.initial_state(sc)
    rule = DispatchRule("spt")
    for t in range(6):
        st, _ = p.transition(p.post_decision(st, rule(st))[0], sc, t)
    assert not p.action_mask(st).all()
    bad = (~p.action_mask(st)).float().argmax(1)
    with pytest.raises(ValueError, match="may not be dispatched"):
        p.post_decision(st, bad)
    with pytest.raises(ValueError, match="job indices in"):
        p.post_decision(st, torch.tensor([6]))
    with pytest.raises(ValueError, match="whole numbers"):
        p.post_decision(st, torch.tensor([[0.5]]))
    assert p.observe(st).shape == (1, p.obs_dim)


def test_tardiness_with_due_dates():
    p = S.JobShop([I.load("ft06")], due_date_factor=1.5)
    st, m = run_policy(p, DispatchRule("spt"))
    ends = [max(e) for e in schedules(st)[0]["end"]]
    due = [1.5 * sum(r) for r in I.load("ft06").duration]
    assert m["tardiness"].item() == pytest.approx(sum(max(0, c - d) for c, d in zip(ends, due)))


def test_noise_zero_is_deterministic_and_noise_is_seeded():
    inst = I.load("ft10")
    det = S.JobShop([inst])
    zero = S.JobShop([inst], noise="lognormal", noise_level=0.0, test_scenarios=5)
    noisy = S.JobShop([inst], noise="lognormal", noise_level=0.3, test_scenarios=64)
    rule = DispatchRule("mwkr")
    d = run_policy(det, rule)[1]["makespan"]
    z = run_policy(zero, rule)[1]["makespan"]
    assert (z == d).all()
    a, b = noisy.sample(64, "test", 3), noisy.sample(64, "test", 3)
    assert torch.equal(a["realized"], b["realized"])
    assert not torch.equal(a["realized"], noisy.sample(64, "train", 3)["realized"])
    st, m = run_policy(noisy, rule, a)
    assert m["makespan"].std() > 0
    # each noisy schedule is valid for its realised processing times
    for k, sch in enumerate(schedules(st)[:8]):
        real = a["realized"][k].tolist()
        check.assert_valid(inst.machine, real, sch["start"], sch["end"], m["makespan"][k].item(), tol=1e-5)
    # mean-preserving noise: mean realised duration close to nominal
    assert a["realized"].mean().item() == pytest.approx(a["duration"].mean().item(), rel=0.05)


def test_observation_hides_running_operations():
    """Two noise draws that differ only in the duration of an operation still running at t_now."""
    p = S.JobShop([I.load("ft06")], noise="uniform", noise_level=0.5, test_scenarios=2)
    sc = p.sample(2, "test", 0)
    sc.data["realized"][1] = sc.data["realized"][0]
    st = p.initial_state(sc)
    rule = DispatchRule("spt")
    for t in range(3):  # three dispatches at time 0: all running at the next decision
        post, _ = p.post_decision(st, rule(st))
        st, _ = p.transition(post, sc, t)
    running = (st["end"] > st["t_now"][:, None, None]) & (torch.arange(6) < st["next_op"][..., None])
    j, k = running[0].nonzero()[0].tolist()
    sc2 = sc.select(slice(0, 2))
    sc2.data = {key: v.clone() for key, v in sc.data.items()}
    sc2.data["realized"][1, j, k] *= 1.2
    st2 = p.initial_state(sc2)
    for t in range(3):
        post, _ = p.post_decision(st2, rule(st2))
        st2, _ = p.transition(post, sc2, t)
    assert st2["end"][1, j, k] != st2["end"][0, j, k]
    assert torch.equal(p.observe(st2)[0], p.observe(st2)[1])


def test_generator_problem():
    p = S.build(
        {"generator": {"kind": "uniform", "jobs": 6, "machines": 4, "low": 1, "high": 9}, "test": {"scenarios": 16}},
        "gen.toml",
    )
    sc = p.test_set()
    assert sc.n == 16 and p.periods == 24
    st, m = run_policy(p, DispatchRule("lwkr"), sc)
    for b, sch in enumerate(schedules(st)):
        mach = sc["machine"][b].tolist()
        dur = sc["duration"][b].tolist()
        check.assert_valid(mach, dur, sch["start"], sch["end"], m["makespan"][b].item())
    t = S.build({"generator": {"jobs": 15, "machines": 15}}, "t.toml").sample(2, "test", 0)
    assert t["duration"].shape == (2, 15, 15)


@pytest.mark.parametrize(
    "cfg,key",
    [
        ({"instances": ["ft06"], "bogus": 1}, "bogus"),
        ({"instances": "ft06"}, "instances"),
        ({"instances": ["ft07"]}, "instances[0]"),
        ({"instances": ["ft06"], "noise": {"distribution": "lognormal", "level": -0.1}}, "noise.level"),
        ({"instances": ["ft06"], "noise": {"distribution": "gamma", "level": 0.1}}, "noise.distribution"),
        ({"instances": ["ft06"], "schedule": "semi_active"}, "schedule"),
        ({"instances": ["ft06"], "schedule": "active", "noise": {"distribution": "uniform", "level": 0.1}}, "schedule"),
        ({}, "instances"),
        ({"generator": {"jobs": 3, "machines": 2, "low": 5, "high": 2}}, "generator.high"),
    ],
)
def test_bad_config_names_file_and_key(cfg, key):
    with pytest.raises(ConfigError) as e:
        S.build(cfg, "problems/jobshop/x.toml")
    assert e.value.key == key and e.value.source == "problems/jobshop/x.toml"


def test_makespan_lower_bound_by_hand_and_never_above_a_completion():
    # two jobs on two machines: J0 = (m0, 3), (m1, 2); J1 = (m0, 2), (m1, 5); the optimum is 9 (J1 first)
    p = S.JobShop([I.read_text("2 2\n0 3 1 2\n0 2 1 5", "two")])
    sc = p.test_set()
    st = p.initial_state(sc)
    # machine 1: J1's operation can start at 2 (head), J0's at 3; 2 + 2 + 5 and no tail after either
    assert S.makespan_lower_bound(st).item() == 9
    after = {}
    for job in (0, 1):
        s, _ = p.transition(p.post_decision(st, torch.tensor([job]))[0], sc, 0)
        after[job] = (S.makespan_lower_bound(s).item(), p.cost_to_go_bound(s, 1).item(), s["makespan"].item())
    # J0 first: machine 0 takes J1 at 3, then J1's 5 on machine 1 (10); J1 first: machine 1 from 2, 2 + 5 (9)
    assert after == {0: (10, 7, 3), 1: (9, 7, 2)}
    # Taillard's ta01: at the start, the one-machine bound with heads and tails computed here from the instance's
    # lists (at least the classic largest job or machine load); along an SPT schedule never above its final
    # makespan, which it equals at the end
    inst = I.load("ta01")
    p = S.JobShop([inst])
    sc = p.test_set()
    ops = {}
    for ms, ds in zip(inst.machine, inst.duration):
        for k, (m, d) in enumerate(zip(ms, ds)):
            ops.setdefault(m, []).append((sum(ds[:k]), d, sum(ds[k + 1 :])))
    one = max(min(h for h, _, _ in v) + sum(d for _, d, _ in v) + min(q for _, _, q in v) for v in ops.values())
    classic = max(max(map(sum, inst.duration)), max(sum(d for _, d, _ in v) for v in ops.values()))
    st = p.initial_state(sc)
    assert S.makespan_lower_bound(st).item() == max(one, max(map(sum, inst.duration))) > classic
    traj = rollout(p, DispatchRule("spt"), sc, record=True)
    final = traj.final_state["makespan"].item()
    lbs = [S.makespan_lower_bound(s).item() for s in traj.states]
    assert all(lb <= final for lb in lbs) and S.makespan_lower_bound(traj.final_state).item() == final
    assert lbs[-1] > lbs[0]  # it tightens as the schedule fills in
