"""The cover rule: set machines up for the items with the fewest periods of cover, batched.

An item's cover is its stock divided by its mean demand (periods until it runs out). A machine keeps its
current setup (no setup cost) while that item's cover is below ``high``, or while no item it can make is below
``low``; otherwise it switches to the item it can make with the fewest periods of cover, if that is below
``low`` (an idle machine with nothing urgent stays idle). Machines that switch in the same period are
de-conflicted in a fixed number of rounds: where several pick the same item, the one with the largest
capacity for it keeps it and the others move to their next choice (vectorised over scenarios, machines and
items; the rounds are a loop of at most ``rounds`` passes, not over machines).
"""

from __future__ import annotations

import itertools

import torch

from ..core import evaluate

__all__ = ["CoverRule", "search_cover"]


class CoverRule:
    def __init__(self, problem, low: float = 2.0, high: float = 6.0, rounds: int = 3):
        self.problem, self.low, self.high, self.rounds = problem, float(low), float(high), int(rounds)

    def __call__(self, state, t: int) -> torch.Tensor:
        p = self.problem
        inv = state["inventory"]
        B = inv.shape[0]
        cap = p.cap.to(inv)  # [M, I]
        can = (cap > 0).expand(B, -1, -1)  # [B, M, I]
        cover = inv / p.mean_demand  # [B, I]
        cur = state["setup"].argmax(-1)  # [B, M], 0 idle
        cur_cover = torch.gather(
            torch.cat([torch.full((B, 1), float("inf"), dtype=inv.dtype, device=inv.device), cover], 1), 1, cur
        )  # idle: infinite cover
        score = torch.where(
            can, cover.unsqueeze(1).expand(-1, p.M, -1), torch.full_like(can, float("inf"), dtype=inv.dtype)
        )
        best = score.min(-1).values  # [B, M]
        keep = (cur > 0) & ((cur_cover < self.high) | (best >= self.low))
        switch = ~keep & (best < self.low)
        # production already committed to each item by the machines that keep their setups
        committed = torch.zeros_like(inv)
        committed.scatter_add_(
            1,
            (cur - 1).clamp_min(0),
            torch.where(
                keep & (cur > 0),
                torch.gather(
                    torch.cat([torch.zeros(p.M, 1, dtype=inv.dtype, device=inv.device), cap], 1).expand(B, -1, -1),
                    2,
                    cur.unsqueeze(-1),
                ).squeeze(-1),
                torch.zeros_like(cur, dtype=inv.dtype),
            ),
        )
        score = torch.where(can, ((inv + committed) / p.mean_demand).unsqueeze(1).expand(-1, p.M, -1), score)
        choice = torch.zeros_like(cur)
        pending = switch.clone()
        taken = torch.zeros(B, p.I, dtype=torch.bool, device=inv.device)
        for _ in range(self.rounds):
            sc = torch.where(taken.unsqueeze(1), torch.full_like(score, float("inf")), score)
            item = sc.argmin(-1)  # [B, M]
            ok = pending & (torch.gather(sc, 2, item.unsqueeze(-1)).squeeze(-1) < self.low)
            capm = torch.where(
                ok,
                torch.gather(cap.expand(B, -1, -1), 2, item.unsqueeze(-1)).squeeze(-1),
                torch.full_like(inv[:, :1].expand(-1, p.M), -1.0),
            )
            # per item, the largest capacity among the pending machines that picked it wins
            top = torch.full((B, p.I), -1.0, dtype=inv.dtype, device=inv.device)
            top.scatter_reduce_(1, item, capm, "amax")
            win = ok & (capm == torch.gather(top, 1, item))
            # ties in capacity: the lowest machine index wins
            idx = torch.arange(p.M, device=inv.device).expand(B, -1)
            first = torch.full((B, p.I), p.M, dtype=torch.long, device=inv.device)
            first.scatter_reduce_(1, item, torch.where(win, idx, torch.full_like(idx, p.M)), "amin")
            win = win & (idx == torch.gather(first, 1, item))
            choice = torch.where(win, item + 1, choice)
            taken = _mark(taken, item, win)
            pending = pending & ~win
        action = torch.where(keep, cur, choice)
        action = torch.where(switch & (choice == 0) & (cur > 0), cur, action)  # nothing left to switch to: keep
        return action


def _mark(taken: torch.Tensor, item: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """``taken[b, item[b, m]] = True`` where ``win[b, m]``."""
    hit = torch.zeros(taken.shape, dtype=torch.long, device=taken.device)
    hit.scatter_add_(1, item, win.to(torch.long))
    return taken | (hit > 0)


def search_cover(problem, scenarios, lows=(1.0, 2.0, 3.0, 4.0, 6.0), highs=(2.0, 4.0, 8.0, 12.0, 1e9)):
    """Grid search of ``(low, high)`` on ``scenarios`` (dev): the best pair and its cost, and all results."""
    results = []
    for lo, hi in itertools.product(lows, highs):
        if hi < lo:
            continue
        ev = evaluate(problem, CoverRule(problem, lo, hi), scenarios)
        results.append({"low": lo, "high": hi, "cost": ev.mean})
    best = min(results, key=lambda r: r["cost"])
    return best, results
