"""Distil the one-layer two-stage VM policy into a network without message passing (``layers = 0``).

A network whose VM and node embeddings read only their own features can be evaluated incrementally move by
move (:class:`opsrl.vm.policy._Flat`: after a migration only the rows whose features changed are recomputed),
which is what makes best of 64 fast. The student learns the teacher's two distributions (cross-entropy to
the teacher's first-stage probabilities over all VMs, and to its second-stage probabilities over all
destinations of the VM the roll-out chose) on the states that best of K visits: training snapshots rolled
out ``--rows`` times each with sampling, at the evaluation MNL, alternately by the teacher and by the
student (DAgger: the student also learns on its own mistakes). Keeps the student best on dev snapshots
(best of ``--dev-samples`` through the fast planner) and writes it with its JSON.

    python benchmarks/vm_distill_gnn.py --minutes 8 --out /tmp/vm_student.pt

The bundled student, ``opsrl/vm/data/two_stage_distilled.pt``, came from ``--minutes 6 --width 8``;
``vm_finetune.py`` fine-tunes it into the shipped policy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from opsrl.nn.two_stage import TwoStageActorCritic
from opsrl.vm import policy as pol
from opsrl.vm.problem import build

ROOT = Path(__file__).resolve().parent.parent


def _cross_entropy(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """``-sum p_teacher log p_student`` per row over the entries the teacher allows (both are normalised
    log-probabilities with ``-inf`` where masked; the masks are the same)."""
    pt = teacher_logits.exp()
    ok = torch.isfinite(teacher_logits)
    return -torch.where(ok, pt * student_logits, torch.zeros_like(pt)).sum(-1)


def dev_score(problem, ac, dev, k: int) -> float:
    ac.eval()
    f = pol.best_of(problem, ac, dev, k, 0)
    return float(problem.fr(f).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--mnl", type=int, default=50)
    ap.add_argument("--snapshots", type=int, default=2, help="training snapshots per roll-out")
    ap.add_argument("--rows", type=int, default=8, help="sampled roll-outs per training snapshot")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--dev", type=int, default=2, help="dev snapshots")
    ap.add_argument("--dev-samples", type=int, default=16)
    ap.add_argument("--eval-every", type=int, default=4, help="roll-outs between dev evaluations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/vm_student.pt"))
    ap.add_argument("--teacher", type=Path, default=pol.DATA / "two_stage_l1.pt", help="the teacher's weights")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    problem = build({"generator": "medium", "mnl": a.mnl}, "benchmarks/vm_distill_gnn.py")
    teacher = pol.load(problem, a.teacher)
    student = TwoStageActorCritic(problem, a.width, 0)
    opt = torch.optim.Adam(student.parameters(), lr=a.lr)
    pool = problem.sample(64, "train", a.seed + 1)
    dev = problem.sample(a.dev, "dev", a.seed)
    t0 = time.perf_counter()
    teacher_dev = dev_score(problem, teacher, dev, a.dev_samples)
    best = (dev_score(problem, student, dev, a.dev_samples), 0, {k: v.clone() for k, v in student.state_dict().items()})
    curve = [{"rollout": 0, "seconds": time.perf_counter() - t0, "dev_fr": best[0], "loss": None}]
    print(f"teacher dev best of {a.dev_samples}: {teacher_dev:.4f}; student at start {best[0]:.4f}", flush=True)
    g = torch.Generator().manual_seed(a.seed)
    r = 0
    while time.perf_counter() - t0 < a.minutes * 60:
        r += 1
        idx = torch.randint(pool.n, (a.snapshots,), generator=g).repeat_interleave(a.rows)
        state = problem.initial_state(pool.select(idx))
        actor_is_teacher = r % 2 == 1
        student.train()
        losses = []
        for t in range(problem.periods):
            feats = teacher.encode(state, t)
            with torch.no_grad():
                dt, _ = teacher.evaluate(feats)
            ds, _ = student.evaluate(feats)
            with torch.no_grad():
                action = dt.sample() if actor_is_teacher else ds.sample()
            item = action[:, 0]
            loss = _cross_entropy(dt.cat1.logits, ds.cat1.logits) + _cross_entropy(
                dt._second(item).logits, ds._second(item).logits
            )
            loss = loss.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            state, _ = problem.post_decision(state, action)
        if r % a.eval_every == 0:
            score = dev_score(problem, student, dev, a.dev_samples)
            curve.append(
                {
                    "rollout": r,
                    "seconds": time.perf_counter() - t0,
                    "dev_fr": score,
                    "loss": sum(losses) / len(losses),
                }
            )
            if score < best[0]:
                best = (score, r, {k: v.clone() for k, v in student.state_dict().items()})
            print(
                f"roll-out {r} ({time.perf_counter() - t0:.0f} s): loss {curve[-1]['loss']:.3f}, dev best of "
                f"{a.dev_samples} {score:.4f} (teacher {teacher_dev:.4f})",
                flush=True,
            )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(student.state_dict(), a.out.with_name(a.out.stem + "_last.pt"))  # the last parameters too
    student.load_state_dict(best[2])
    torch.save(student.state_dict(), a.out)
    meta = {
        "width": a.width,
        "layers": 0,
        "trained_on": f"synthetic Medium, MNL {a.mnl}",
        "distilled_from": str(a.teacher.name),
        "distill": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "teacher_dev": teacher_dev,
        "best_dev": best[0],
        "best_rollout": best[1],
        "rollouts": r,
        "seconds": time.perf_counter() - t0,
        "curve": curve,
    }
    a.out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    print(json.dumps({k: v for k, v in meta.items() if k != "curve"}, indent=1))


if __name__ == "__main__":
    main()
