"""What the generic methods will allocate, estimated before anything is (their ``Method.sizes`` hooks).

The runner (:func:`opsrl.bench.runner.check_solver_sizes`) adds these to the test set's bytes and refuses a run
that would need more than half the memory free, naming the keys of the largest part. The estimates: a pool of
scenarios from one-scenario samples (:func:`opsrl.core.config.scenario_bytes`), a network from its widths
(parameters x 4 bytes for weights, gradients and Adam's moments, activations of the rows kept for the backward
pass: :func:`opsrl.core.config.mlp_bytes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..core import Problem
from ..core.config import Need, mlp_bytes, scenario_bytes

__all__ = ["pool_needs", "train_dev_needs", "network_need", "action_outputs"]


def pool_needs(
    problem: Problem, o: Mapping[str, Any], source: str, pools: list[tuple[str, str, str, int]]
) -> list[Need]:
    """One :class:`Need` per pool ``(scenarios key, periods key, split, periods)`` of the options ``o``."""
    out = []
    for key, periods_key, split, periods in pools:
        n = int(o.get(key) or 0)
        if n <= 0:
            continue
        nbytes = scenario_bytes(problem, n, periods, split)
        if nbytes is not None:
            keys = (f"options.{key}",) + ((f"options.{periods_key}",) if periods_key in o else ())
            out.append(Need(f"the {split} pool ({n} scenarios x {periods} periods)", nbytes, source, keys))
    return out


def train_dev_needs(problem: Problem, o: Mapping[str, Any], source: str) -> tuple[list[Need], int]:
    """The training pool and the dev set of a learning method's options (``train_scenarios``/``train_periods``,
    ``dev_scenarios``/``dev_periods``), and the training periods."""
    train_periods = o["train_periods"] or problem.periods
    dev_periods = o["dev_periods"] or problem.test_periods or problem.periods
    pools = [
        ("train_scenarios", "train_periods", "train", train_periods),
        ("dev_scenarios", "dev_periods", "dev", dev_periods),
    ]
    return pool_needs(problem, o, source, pools), train_periods


def action_outputs(problem: Problem) -> int:
    spec = problem.action_spec
    return int(spec.n) if spec.kind == "discrete" else int(math.prod(spec.shape) or 1)


def network_need(
    problem: Problem,
    policy: Mapping[str, Any],
    rows: float,
    source: str,
    batch_key: str,
    copies: int = 1,
    n_out: int | None = None,
    hidden_key: str = "policy.hidden",
) -> Need | None:
    """The bytes of the network a validated ``[policy]`` table describes, trained on ``rows`` inputs at once
    (a batch x the periods kept for its backward pass). MLPs read ``problem.obs_dim``; graph networks
    (``gnn``, ``graph``, ``two_stage``) count a layer of ``width`` units per message-passing round and node."""
    kind = policy.get("kind", "mlp")
    if kind in ("mlp", "lstm", "linear") and "hidden" in policy:
        try:
            n_in = int(problem.obs_dim)
        except Exception:  # a problem without a flat view: its policy builder says so
            return None
        hidden = list(policy["hidden"]) if kind != "linear" else []
        out = n_out if n_out is not None else action_outputs(problem)
        nbytes = mlp_bytes(n_in, hidden, out, rows, copies)
        return Need(
            f"the policy network ({kind}, widths {hidden}, {int(rows)} rows a step)",
            nbytes,
            source,
            (hidden_key, f"options.{batch_key}"),
        )
    width = policy.get("width") or (policy.get("hidden") or [0])[0]
    layers = int(policy.get("layers") or 1)
    if not width:
        return None
    nodes = max(1, int(getattr(problem, "n_locations", 1) or 1))
    nbytes = mlp_bytes(width, [width] * (3 * layers + 2), 1, rows * nodes, copies)
    key = "policy.width" if "width" in policy else hidden_key
    return Need(
        f"the policy network ({kind}, width {width}, {layers} layers, {int(rows * nodes)} node rows a step)",
        nbytes,
        source,
        (key, f"options.{batch_key}"),
    )
