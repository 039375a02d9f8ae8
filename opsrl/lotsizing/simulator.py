"""Batched simulator of the capacitated multi-item lot-sizing problem with setups (Felizardo et al., PDPPO).

Items ``i = 1..I``, machines ``m = 1..M``. Each period each machine is idle (choice 0) or set up for one item
it can make (choice ``i``): an action is ``[B, M]`` integers in ``0..I``, or a (soft) one-hot ``[B, M, I + 1]``
(for relaxations such as straight-through Gumbel-softmax). The step follows the authors' ``SimplePlant``
(``code/Lot-sizing/envs/simplePlant.py`` of leokan92/pdppo), batched:

1. decision (``post_decision``): a machine choosing item ``i`` while not already set up for it pays the setup
   cost ``sc[m, i]`` and loses ``sl[m, i]`` units of that period's output; it adds ``cap[m, i] - loss`` to the
   item's stock (the authors do not clip this at zero; with a mask it only happens when ``cap < sl``). An idle
   machine makes nothing and forgets its setup, so its next setup is paid again. The post-decision state is
   the stock after production and the new setups, before demand.
2. exogenous (``transition``): demand ``d[t, i]`` (drawn with the scenarios) is served from stock; what is
   short is lost at ``ls[i]`` per unit; stock above the cap (100) is discarded at no cost; then holding
   ``h[i]`` per unit left.

Costs are the setup cost (decision part) and holding plus lost sales (exogenous part). The test metric is the
episode total over ``T = 100`` periods, as the authors report it. No loop over scenarios, items or machines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..core import ActionSpec, ConfigError, Field, Problem, Scenarios, State, numpy_rng, validate
from ..core.config import non_negative, positive, probability
from ..core.datafile import resolve
from .instances import SETTINGS, Instance, array, generate

__all__ = ["LotSizing", "build", "SCHEMA"]

DEMAND_SCHEMA = {
    "distribution": Field(
        str,
        "binomial",
        choices=("binomial", "poisson", "pmf"),
        doc="i.i.d. per item and period: Binomial(n, p), Poisson(mean) or a user pmf",
    ),
    "n": Field(int, 20, allowed="a number of trials from 1 to 10^6 (binomial)", check=positive, max=10**6),
    "p": Field(float, 0.4, allowed="a probability (binomial)", check=probability),
    "mean": Field(float, 8.0, allowed="a positive mean (poisson)", check=positive),
    "values": Field(
        list,
        [],
        item=float,
        allowed="demand values >= 0 (pmf)",
        check=lambda v: all(math.isfinite(x) and x >= 0 for x in v),
    ),
    "probs": Field(
        list,
        [],
        item=float,
        allowed="probabilities of the values, summing to 1 (pmf)",
        check=lambda v: all(math.isfinite(x) and x >= 0 for x in v),
    ),
}

TEST_SCHEMA = {
    "scenarios": Field(int, 100, allowed="a positive number of test scenarios", check=positive),
    "seed": Field(int, 0, allowed="an integer >= 0", check=non_negative),
}

_MATRIX_KEYS = ("capacity", "setup_cost", "setup_loss")
_VECTOR_KEYS = ("holding_cost", "lost_sales_cost", "max_inventory", "initial_inventory")

SCHEMA = {
    "items": Field(
        int, 0, allowed="a number of items up to 10^4 (0: from the given matrices)", check=non_negative, max=10**4
    ),
    "machines": Field(
        int, 0, allowed="a number of machines up to 10^4 (0: from the given matrices)", check=non_negative, max=10**4
    ),
    "seed": Field(int, 0, allowed="an integer >= 0 (the instance generator's seed)", check=non_negative),
    "setting": Field(
        str,
        "published",
        choices=tuple(SETTINGS),
        doc="generator parameters: the published six instances or the older 15 x 5 setting",
    ),
    "periods": Field(int, 100, allowed="a horizon from 1 to 10^6 periods", check=positive, max=10**6),
    "initial": Field(
        str,
        "random",
        choices=("random", "instance"),
        doc="random: stock uniform on 0..cap-1 and setups uniform over makeable items per scenario "
        "(the authors' reset); instance: the instance's initial stock and setups",
    ),
    "idle": Field(bool, True, doc="machines may stay idle (choice 0)"),
    "observation": Field(
        str,
        "onehot",
        choices=("onehot", "index"),
        doc="what policies see besides stock / cap: each machine's setup one-hot (M x (I + 1)) or "
        "its index / I (M numbers, the authors' observation, normalised)",
    ),
    **{k: Field(list, [], allowed="a list of lists (machines x items) of numbers >= 0") for k in _MATRIX_KEYS},
    **{k: Field(list, [], allowed="a list of numbers >= 0, one per item") for k in _VECTOR_KEYS},
    "initial_setup": Field(list, [], allowed="a list of integers 0..items, one per machine (0: idle)"),
    "instance": Field(
        str,
        "",
        allowed="a TOML or JSON file of the plant (capacity, costs ...; relative: to the problem file's folder) "
        "instead of items, machines, seed and the matrices",
    ),
    "demand": Field(dict, {}, schema=DEMAND_SCHEMA),
    "test": Field(dict, {}, schema=TEST_SCHEMA),
}


class LotSizing(Problem):
    """The batched lot-sizing simulator. State: ``inventory [B, I]`` and ``setup [B, M, I + 1]`` (one-hot of the
    current setup, column 0 = idle)."""

    family = "lotsizing"
    metric = "total"
    warmup = 0

    def __init__(
        self,
        inst: Instance,
        periods: int = 100,
        demand: Mapping[str, Any] | None = None,
        initial: str = "random",
        idle: bool = True,
        test_scenarios: int = 100,
        test_seed: int = 0,
        config: Mapping[str, Any] | None = None,
        source: str = "<problem>",
        observation: str = "onehot",
    ):
        self.inst = inst
        self.source = source
        self.periods = int(periods)
        self.test_periods = self.periods
        self.test_scenarios, self.test_seed = int(test_scenarios), int(test_seed)
        self.demand = validate(demand or {}, DEMAND_SCHEMA, source, prefix="demand.")
        self.initial, self.idle, self.observation = initial, bool(idle), observation
        self.config = dict(config or {})
        I, M = inst.items, inst.machines
        self.I, self.M, self.K = I, M, I + 1
        self.n_locations = 1
        self.action_spec = ActionSpec("discrete", shape=(M,), n=I + 1)
        f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)
        self.cap, self.sc, self.sl = f(inst.capacity), f(inst.setup_cost), f(inst.setup_loss)
        self.h, self.ls, self.max_inv = f(inst.holding_cost), f(inst.lost_sales_cost), f(inst.max_inventory)
        allowed = torch.cat([torch.full((M, 1), self.idle), self.cap > 0], 1)  # [M, K]
        self.allowed = allowed
        self._check(source)
        self.mean_demand = self._mean_demand()
        self.name = f"lotsizing_i{I}_m{M}"

    # --- checks ---------------------------------------------------------------------------------
    def _check(self, source: str) -> None:
        nomachine = (self.cap.sum(0) <= 0).nonzero().flatten().tolist()
        if nomachine:
            raise ConfigError(
                source,
                "capacity",
                f"item {nomachine[0] + 1} has capacity 0 on every machine (no "
                "machine can make it); every item needs a machine with capacity > 0",
            )
        empty = (~self.allowed.any(1)).nonzero().flatten().tolist()
        if empty:
            raise ConfigError(
                source,
                "capacity",
                f"machine {empty[0] + 1} can make no item and idle = false, so its "
                "action mask allows no action; give it a positive capacity or set idle = true",
            )
        d = self.demand
        if d["distribution"] == "pmf":
            if not d["values"] or len(d["values"]) != len(d["probs"]):
                raise ConfigError(source, "demand.probs", "a pmf needs values and as many probabilities")
            if abs(sum(d["probs"]) - 1.0) > 1e-9:
                raise ConfigError(
                    source, "demand.probs", f"probabilities sum to {sum(d['probs']):g}; they must sum to 1"
                )
        if (
            self.inst.initial_setup.shape != (self.M,)
            or ((self.inst.initial_setup < 0) | (self.inst.initial_setup > self.I)).any()
        ):
            raise ConfigError(source, "initial_setup", f"one integer in 0..{self.I} per machine")
        if (self.inst.initial_inventory > self.inst.max_inventory).any():
            raise ConfigError(source, "initial_inventory", "values up to max_inventory are allowed")
        if (self.inst.max_inventory <= 0).any():
            raise ConfigError(source, "max_inventory", "positive inventory caps are allowed")

    def _mean_demand(self) -> float:
        d = self.demand
        if d["distribution"] == "binomial":
            return d["n"] * d["p"]
        if d["distribution"] == "poisson":
            return d["mean"]
        return float(np.dot(d["values"], d["probs"]))

    # --- scenarios ------------------------------------------------------------------------------
    def _sample(self, n: int, split: str, seed: int, periods: int) -> dict[str, torch.Tensor]:
        d = self.demand
        rng = numpy_rng(seed, split, "lotsizing-demand")
        size = (n, periods, self.I)
        if d["distribution"] == "binomial":
            dem = rng.binomial(d["n"], d["p"], size)
        elif d["distribution"] == "poisson":
            dem = rng.poisson(d["mean"], size)
        else:
            dem = rng.choice(np.asarray(d["values"], dtype=float), size=size, p=np.asarray(d["probs"], dtype=float))
        r0 = numpy_rng(seed, split, "lotsizing-initial")
        if self.initial == "random":  # the authors' _random_initial_state: randint(0, cap), uniform makeable setup
            high = np.floor(self.inst.max_inventory).astype(np.int64)
            inv = r0.integers(0, high, size=(n, self.I))
            can = self.inst.capacity > 0  # [M, I]
            u = r0.random((n, self.M))
            cum = np.cumsum(can, 1) / np.maximum(can.sum(1, keepdims=True), 1)  # [M, I]
            setup = (u[:, :, None] >= cum[None]).sum(-1) + 1  # 1-based index of the chosen makeable item
            setup = np.where(can.any(1)[None], setup, 0)  # a machine that can make nothing starts idle
        else:
            inv = np.broadcast_to(self.inst.initial_inventory, (n, self.I))
            setup = np.broadcast_to(self.inst.initial_setup, (n, self.M))
        return {
            "demand": torch.as_tensor(np.asarray(dem, dtype=np.float32)),
            "inventory0": torch.as_tensor(np.asarray(inv, dtype=np.float32)),
            "setup0": torch.as_tensor(np.asarray(setup, dtype=np.int64)),
        }

    # --- dynamics -------------------------------------------------------------------------------
    def _params(self, like: torch.Tensor):
        dev, dt = like.device, like.dtype
        return (
            self.cap.to(dev, dt),
            self.sc.to(dev, dt),
            self.sl.to(dev, dt),
            self.h.to(dev, dt),
            self.ls.to(dev, dt),
            self.max_inv.to(dev, dt),
        )

    def initial_state(self, scenarios: Scenarios) -> State:
        inv = scenarios["inventory0"]
        setup = torch.nn.functional.one_hot(scenarios["setup0"], self.K).to(inv.dtype)
        return {"inventory": inv.clone(), "setup": setup}

    def one_hot(self, action: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``[B, M, K]`` one-hot of an index action ``[B, M]``; a float ``[B, M, K]`` action is returned as is."""
        if action.dim() == 3:
            if action.shape[1:] != (self.M, self.K):
                raise ValueError(f"a one-hot action needs shape [B, {self.M}, {self.K}], got {list(action.shape)}")
            return action.to(like.dtype)
        if action.dim() == 1 and self.M == 1:  # one machine: a policy head may give [B]
            action = action.unsqueeze(1)
        if action.dim() != 2 or action.shape[1] != self.M:
            raise ValueError(f"an action needs shape [B, {self.M}] (choices 0..{self.I}), got {list(action.shape)}")
        return torch.nn.functional.one_hot(action.long(), self.K).to(like.dtype)

    def decide(self, state: State, action: torch.Tensor) -> dict[str, torch.Tensor]:
        """The decision step in detail: new setups ``[B, M, K]``, changes ``[B, M, I]``, production ``[B, I]``,
        setup cost ``[B]``."""
        inv = state["inventory"]
        cap, sc, sl, *_ = self._params(inv)
        a = self.one_hot(action, inv)
        make = a[..., 1:]  # [B, M, I]
        change = make * (1 - state["setup"][..., 1:])  # set up for an item it was not set up for
        production = (make * cap - change * sl).sum(1)
        return {"setup": a, "change": change, "production": production, "setup_cost": (change * sc).sum((1, 2))}

    def post_decision(self, state: State, action: torch.Tensor) -> tuple[State, torch.Tensor]:
        d = self.decide(state, action)
        return {"inventory": state["inventory"] + d["production"], "setup": d["setup"]}, d["setup_cost"]

    def serve(self, post: State, demand: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exogenous step in detail: stock ``[B, I]`` after demand and the cap, lost units ``[B, I]``,
        holding and lost-sales costs ``[B]``."""
        x = post["inventory"] - demand
        *_, h, ls, max_inv = self._params(x)
        lost = torch.relu(-x)
        inv = torch.minimum(torch.relu(x), max_inv)
        return {"inventory": inv, "lost": lost, "holding_cost": (h * inv).sum(1), "lost_sales_cost": (ls * lost).sum(1)}

    def transition(self, post_state: State, scenarios: Scenarios, t: int) -> tuple[State, torch.Tensor]:
        s = self.serve(post_state, scenarios["demand"][:, t].to(post_state["inventory"].dtype))
        return {"inventory": s["inventory"], "setup": post_state["setup"]}, s["holding_cost"] + s["lost_sales_cost"]

    # --- views ----------------------------------------------------------------------------------
    def action_mask(self, state: State) -> torch.Tensor:
        B = state["inventory"].shape[0]
        return self.allowed.to(state["inventory"].device).expand(B, -1, -1)

    def observe(self, state: State) -> torch.Tensor:
        inv = state["inventory"]
        if self.observation == "index":
            idx = (state["setup"] * torch.arange(self.K, device=inv.device, dtype=inv.dtype)).sum(-1)
            return torch.cat([inv / self.max_inv.to(inv), idx / self.I], 1)
        return torch.cat([inv / self.max_inv.to(inv), state["setup"].flatten(1)], 1)

    def observe_post(self, post_state: State) -> torch.Tensor:
        return self.observe(post_state)

    def describe(self) -> str:
        return f"lot sizing {self.I} items x {self.M} machines, T = {self.periods}"


def build(config: Mapping[str, Any], source: str) -> LotSizing:
    """Build a :class:`LotSizing` problem from a problem file's table (keys: :data:`SCHEMA`, ``docs/lotsizing.md``)."""
    cfg = validate(config, SCHEMA, source)
    if cfg["instance"]:
        return _build_from_file(cfg, config, source)
    I, M = cfg["items"], cfg["machines"]
    if cfg["capacity"]:
        shape = np.shape(cfg["capacity"]) if all(isinstance(r, list) for r in cfg["capacity"]) else ()
        if len(shape) != 2:
            raise ConfigError(source, "capacity", "a list of lists (machines x items) of numbers >= 0")
        M, I = (shape[0] if not M else M), (shape[1] if not I else I)
    if I <= 0 or M <= 0:
        raise ConfigError(source, "items", "give items and machines (positive), or a capacity matrix")
    try:
        inst = generate(I, M, cfg["seed"], cfg["setting"])
    except ValueError as e:
        raise ConfigError(source, "seed", f"{e}; try another seed or give the capacity matrix") from None
    for k in _MATRIX_KEYS:
        if cfg[k]:
            setattr(inst, k, array(cfg[k], (M, I), source, k))
    for k in _VECTOR_KEYS:
        if cfg[k]:
            setattr(inst, k, array(cfg[k], (I,), source, k))
    if cfg["initial_setup"]:
        a = array(cfg["initial_setup"], (M,), source, "initial_setup")
        if (a != np.round(a)).any() or (a > I).any():
            raise ConfigError(source, "initial_setup", f"one integer in 0..{I} per machine (0: idle)")
        inst.initial_setup = a.astype(np.int64)
    return _problem(inst, cfg, source)


def _problem(inst: Instance, cfg: Mapping[str, Any], source: str) -> LotSizing:
    return LotSizing(
        inst,
        cfg["periods"],
        cfg["demand"],
        cfg["initial"],
        cfg["idle"],
        cfg["test"]["scenarios"],
        cfg["test"]["seed"],
        cfg,
        source,
        cfg["observation"],
    )


def _build_from_file(cfg: Mapping[str, Any], given: Mapping[str, Any], source: str) -> LotSizing:
    """A problem whose plant is read from ``cfg['instance']`` (see :func:`opsrl.lotsizing.instances.load`)."""
    from .instances import load

    clash = [k for k in (*_MATRIX_KEYS, *_VECTOR_KEYS, "initial_setup", "items", "machines", "seed") if k in given]
    if clash:
        raise ConfigError(
            source, clash[0], "the plant comes from the instance file; set this key there, or leave out 'instance'"
        )
    inst = load(resolve(cfg["instance"], source), source, "instance")  # relative: to the problem file's folder
    return _problem(inst, cfg, source)
