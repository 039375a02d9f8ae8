"""The engine under every adapter: ``num_envs`` episodes of one problem, stepped as one batch.

Written against the contract only (:mod:`opsrl.core`), in torch, so the Gymnasium, Stable-Baselines3 and
TorchRL views share one implementation of what a step, a reset and a bad action are:

* a step is ``post_decision`` then ``transition``, exactly as :func:`opsrl.core.rollout` does it; the reward
  is minus the sum of both costs (times ``reward_scale``, 1 unless asked);
* integer actions (``ActionSpec.integer``) are rounded with ``torch.round``, as opsrl's own evaluation
  rounds them (:func:`opsrl.nn.mlp.integer_action` in eval mode);
* an action of the wrong shape or dtype, NaN, outside ``[low, high]``, outside ``0..n-1`` or masked raises
  one :class:`ValueError` that says what is allowed; nothing is clipped;
* the ``k``-th batch of scenarios (``k = 0, 1, ...``) is ``problem.sample(num_envs, split, episode_seed(seed,
  k))``, with ``episode_seed(seed, 0) = seed``: a run is reproducible from its seed, and the first episodes
  of ``split="test", seed=problem.test_seed`` are the test set opsrl's solvers are measured on. Env ``i`` in
  its ``e``-th episode plays row ``i`` of batch ``e`` (also after a partial reset).

Every scenario of a problem has the same number of periods, so the episodes of one batch end together;
partial resets (TorchRL) can still put envs at different periods, and a step then runs the contract once
per distinct period, on the sub-batch at that period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core import Problem, Scenarios, State
from ..core.config import INT_LIMIT, check_memory, scenario_bytes

MAX_ENVS = 1 << 20
"""At most this many environments in one batch (far above what fits in memory for most problems)."""


def episode_seed(seed: int, k: int) -> int:
    """The seed of the ``k``-th batch of scenarios of a run seeded ``seed`` (``seed`` itself for ``k = 0``)."""
    if k == 0:
        return int(seed)
    state = np.random.SeedSequence([int(seed), int(k), 0x6F707372]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


@dataclass(frozen=True)
class ActionLayout:
    """What an action of one env is, as the adapters expose it.

    ``kind`` is ``"box"`` (``shape``, ``low``, ``high``, ``integer``), ``"discrete"`` (one choice among
    ``nvec[0]``) or ``"multi_discrete"`` (one choice per entry of ``nvec``). ``masked`` says whether the
    observation carries an ``action_mask`` of ``sum(nvec)`` booleans (one block per dimension).
    ``pair_mask``: the mask of the second dimension depends on the first (a two-stage choice such as the VM
    problem's VM, then its destination); the exposed second block is then all True and the simulator's own
    rule decides the pair (an unallowed move is a no-op there, as in opsrl's own rollouts).
    ``levels_of``: an integer box offered as choices (``action_levels``): choice ``k`` is the action ``low + k``,
    ``low`` kept in ``low``, the box's shape in ``levels_of``.
    """

    kind: str
    shape: tuple[int, ...]
    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    nvec: tuple[int, ...] = ()
    masked: bool = False
    pair_mask: bool = False
    levels_of: tuple[int, ...] = ()  # choices stand for the whole numbers low, low + 1, ... of this box shape

    @property
    def mask_size(self) -> int:
        return int(sum(self.nvec))


class EnvClosedError(ValueError):
    """A step or reset of an environment that was closed."""


def layout_of(problem: Problem, state: State, action_bounds=None, action_levels=None) -> ActionLayout:
    """The action layout the adapters expose for ``problem``, narrowed by ``action_bounds`` and offered as
    choices by ``action_levels`` where asked (see :class:`EpisodeBatch`)."""
    lay = _layout(problem, state)
    if action_bounds is not None:
        lay = _tighten(lay, action_bounds)
    if action_levels is not None:
        lay = _levels(lay, action_levels)
    return lay


def _layout(problem: Problem, state: State) -> ActionLayout:
    spec = problem.action_spec
    if spec.kind == "continuous":
        return ActionLayout("box", tuple(spec.shape), float(spec.low), float(spec.high), bool(spec.integer))
    mask = problem.action_mask(state)
    k = math.prod(spec.shape)
    if hasattr(problem, "destination_mask") and k == 2:
        # a two-stage choice (an item, then where it goes): the second dimension's size is the width of the
        # destination mask
        width = int(problem.destination_mask(state, torch.zeros_like(mask[:, 0], dtype=torch.long)).shape[-1])
        return ActionLayout("multi_discrete", (2,), nvec=(int(spec.n), width), masked=mask is not None, pair_mask=True)
    if k == 1:
        return ActionLayout("discrete", (), nvec=(int(spec.n),), masked=mask is not None)
    return ActionLayout("multi_discrete", (k,), nvec=(int(spec.n),) * k, masked=mask is not None)


def _tighten(layout: ActionLayout, bounds) -> ActionLayout:
    """``layout`` with the box narrowed to ``bounds`` (a restriction the user asks for, such as the finite box
    Stable-Baselines3 needs; an action outside it is refused like any action outside the box)."""
    if layout.kind != "box":
        raise ValueError("action_bounds: only continuous (box) actions have bounds; this problem's are discrete")
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"action_bounds must be a pair (low, high) of numbers, got {bounds!r}") from None
    if not (layout.low <= lo < hi <= layout.high) or math.isnan(lo) or math.isnan(hi):
        raise ValueError(
            f"action_bounds {bounds!r} must satisfy {layout.low} <= low < high <= {layout.high} (the problem's box)"
        )
    return ActionLayout("box", layout.shape, lo, hi, layout.integer)


def _levels(layout: ActionLayout, levels) -> ActionLayout:
    """An integer box offered as ``levels`` choices per entry: choice ``k`` is the action ``low + k``."""
    if layout.kind != "box" or not layout.integer:
        raise ValueError("action_levels: only integer box actions (such as order quantities) can be offered as choices")
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise ValueError(f"action_levels must be an integer >= 2, got {levels!r}")
    if math.isinf(layout.low) or layout.low + levels - 1 > layout.high:
        raise ValueError(f"action_levels={levels}: low + levels - 1 must stay in the box [{layout.low}, {layout.high}]")
    k = math.prod(layout.shape)
    kind, nvec = ("discrete", (int(levels),)) if k == 1 else ("multi_discrete", (int(levels),) * k)
    shape = () if k == 1 else (k,)
    return ActionLayout(kind, shape, layout.low, layout.low + levels - 1, True, nvec, levels_of=layout.shape)


class EpisodeBatch:
    """``num_envs`` episodes of ``problem`` on ``split``, stepped together on ``device``."""

    def __init__(
        self,
        problem: Problem,
        num_envs: int,
        split: str = "train",
        seed: int = 0,
        device: str | torch.device = "cpu",
        periods: int | None = None,
        reward_scale: float = 1.0,
        action_bounds: tuple[float, float] | None = None,
        action_levels: int | None = None,
    ):
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be an opsrl Problem (opsrl.problem(name)), got {type(problem).__name__}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or not 1 <= num_envs <= MAX_ENVS:
            raise ValueError(f"num_envs must be an integer from 1 to {MAX_ENVS}, got {num_envs!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 2**63 - 1:
            raise ValueError(f"seed must be an integer from 0 to 2**63 - 1, got {seed!r}")
        if split not in ("train", "dev", "test"):
            raise ValueError(f"split must be 'train', 'dev' or 'test', got {split!r}")
        if periods is None:
            periods = problem.test_periods if split == "test" and problem.test_periods else problem.periods
        if isinstance(periods, bool) or not isinstance(periods, (int, np.integer)) or not 1 <= periods <= INT_LIMIT:
            raise ValueError(f"periods must be a positive integer, got {periods!r}")
        if not (isinstance(reward_scale, (int, float)) and math.isfinite(reward_scale) and reward_scale > 0):
            raise ValueError(f"reward_scale must be a finite number > 0, got {reward_scale!r}")
        self.problem, self.num_envs, self.split, self.seed = problem, int(num_envs), split, int(seed)
        self.device, self.periods, self.reward_scale = torch.device(device), int(periods), float(reward_scale)
        nbytes = scenario_bytes(problem, self.num_envs, self.periods, split)
        if nbytes is not None:  # the scenarios, the next batch drawn at a reset, and the states
            check_memory(3 * nbytes, "num_envs", "num_envs", f"{self.num_envs} environments", self.device)
        self.closed = False
        self.episode = torch.zeros(self.num_envs, dtype=torch.long)  # per env, on the CPU
        self.t = torch.zeros(self.num_envs, dtype=torch.long)
        self._t_all: int | None = 0  # the period of every env, while they all share one (None after a partial reset)
        self._batches: dict[int, Scenarios] = {}
        self.scenarios = self._batch(0)
        self.state = problem.initial_state(self.scenarios)
        self.layout = layout_of(problem, self.state, action_bounds, action_levels)

    # --- scenarios --------------------------------------------------------------------------------
    def _batch(self, k: int) -> Scenarios:
        if k not in self._batches:
            sc = self.problem.sample(self.num_envs, self.split, episode_seed(self.seed, k), self.periods)
            self._batches = {k: sc.to(self.device)}
        return self._batches[k]

    def _check_open(self, what: str) -> None:
        if self.closed:
            raise EnvClosedError(f"{what} after close(): this environment is closed; make a new one")

    # --- reset ------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """All envs start a new episode; a ``seed`` restarts the counter (batch 0 of that seed)."""
        self._check_open("reset()")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 2**63 - 1:
                raise ValueError(f"seed must be an integer from 0 to 2**63 - 1, got {seed!r}")
            self.seed = int(seed)
            self._batches = {}
            self.episode.zero_()
            self.scenarios = self._batch(0)
        else:
            self.reset_envs(torch.ones(self.num_envs, dtype=torch.bool), advance=bool(self.t.any()))
            return
        self.t.zero_()
        self._t_all = 0
        self.state = self.problem.initial_state(self.scenarios)

    def reset_envs(self, which: torch.Tensor, advance: bool = True) -> None:
        """Envs where ``which`` (``[num_envs]`` bool) start their next episode (their next scenario row)."""
        self._check_open("reset()")
        which = which.to("cpu", torch.bool).reshape(-1)
        if not which.any():
            return
        if advance:
            self.episode[which] += 1
        idx = which.nonzero()[:, 0]
        if bool(which.all()) and bool((self.episode == self.episode[0]).all()):
            self.scenarios = self._batch(int(self.episode[0]))
            self.state = self.problem.initial_state(self.scenarios)
        else:
            data = {k: v.clone() for k, v in self.scenarios.data.items()}
            for k in self.episode[idx].unique().tolist():
                rows = idx[self.episode[idx] == k]
                new = self._batch(int(k))
                for key, v in data.items():
                    if new[key].shape[1:] != v.shape[1:]:
                        raise ValueError(
                            f"scenario tensor {key!r} changes shape between batches ({tuple(v.shape[1:])} vs "
                            f"{tuple(new[key].shape[1:])}); reset all envs together for this problem"
                        )
                    v[rows.to(v.device)] = new[key][rows.to(v.device)]
            sc = self.scenarios
            self.scenarios = Scenarios(data, sc.split, sc.seed, sc.periods, dict(sc.meta))
            fresh = self.problem.initial_state(self.scenarios.select(idx.to(self.device)))
            self.state = _put(self.state, idx.to(self.device), fresh)
        self.t[which] = 0
        self._t_all = 0 if bool(which.all()) else None

    # --- views ------------------------------------------------------------------------------------
    def observation(self) -> torch.Tensor:
        return observation(self.problem, self.state)

    def action_mask(self) -> torch.Tensor | None:
        """``[num_envs, sum(nvec)]`` bool, or None for problems without masks."""
        return action_mask(self.problem, self.layout, self.state)

    # --- step -------------------------------------------------------------------------------------
    def to_action(self, action) -> torch.Tensor:
        """Check ``action`` (array or tensor, ``[num_envs, ...]``) and return the simulator's action."""
        return to_sim_action(self.problem, self.layout, action, self.state, self.device)

    def step(self, action) -> tuple[torch.Tensor, torch.Tensor]:
        """One period for every env: ``(cost [num_envs], done [num_envs])``; ``done`` envs are not reset."""
        self._check_open("step()")
        a = self.to_action(action)
        with torch.no_grad():
            ts = None if self._t_all is not None else self.t.unique()
            if ts is None or len(ts) == 1:
                t = self._t_all if ts is None else int(ts[0])
                post, c1 = self.problem.post_decision(self.state, a)
                self.state, c2 = self.problem.transition(post, self.scenarios, t)
                cost = c1 + c2
            else:
                cost = torch.empty(self.num_envs, dtype=self.problem.dtype, device=self.device)
                state = self.state
                for t in ts.tolist():
                    idx = (self.t == t).nonzero()[:, 0].to(self.device)
                    sub = {k: v[idx] for k, v in self.state.items()}
                    post, c1 = self.problem.post_decision(sub, a[idx])
                    new, c2 = self.problem.transition(post, self.scenarios.select(idx), t)
                    state = _put(state, idx, new)
                    cost[idx] = (c1 + c2).to(cost.dtype)
                self.state = state
        self.t += 1
        if ts is None:
            self._t_all += 1
        elif len(ts) == 1:
            self._t_all = int(ts[0]) + 1
        return cost, self.t >= self.periods

    def close(self) -> None:
        self.closed = True
        self._batches = {}


def observation(problem: Problem, state: State) -> torch.Tensor:
    """What the adapters show a policy: ``problem.observe(state)`` as float32 ``[B, d]``."""
    return problem.observe(state).to(torch.float32)


def action_mask(problem: Problem, layout: ActionLayout, state: State) -> torch.Tensor | None:
    """``[B, sum(nvec)]`` bool, one block per action dimension, or None for problems without masks."""
    if not layout.masked:
        return None
    m = problem.action_mask(state).to(torch.bool)
    m = m.reshape(m.shape[0], -1)
    if layout.pair_mask:
        m = torch.cat([m, torch.ones(m.shape[0], layout.nvec[1], dtype=torch.bool, device=m.device)], 1)
    return m


def to_sim_action(problem: Problem, layout: ActionLayout, action, state: State, device) -> torch.Tensor:
    """Check ``action`` (array or tensor, ``[B, ...]``) against ``layout`` and the mask of ``state``, and
    return the simulator's action (rounded where the spec is integer). Raises one :class:`ValueError`."""
    lay = layout
    a = action if torch.is_tensor(action) else torch.as_tensor(np.asarray(action))
    B = next(iter(state.values())).shape[0]
    dt = a.dtype
    if lay.kind == "box":
        if dt == torch.bool or dt.is_complex or not (dt.is_floating_point or _is_int(dt)):
            raise ValueError(f"action dtype {dt} is not allowed: a real number (float or int) per entry")
        want = (B, *lay.shape)
        if tuple(a.shape) not in (want, (B, math.prod(lay.shape))) and not (lay.shape == (1,) and a.shape == (B,)):
            raise ValueError(f"action of shape {tuple(a.shape)}; allowed: {want} (num_envs x action shape)")
        a = a.to(device, problem.dtype).reshape(want)
        if not bool(((a >= lay.low) & (a <= lay.high)).all()):  # NaN fails both comparisons
            bad = ~((a >= lay.low) & (a <= lay.high))
            i = bad.reshape(B, -1).any(1).nonzero()[0, 0].item()
            raise ValueError(
                f"action of env {i} is {a[i].flatten().tolist()}: outside the allowed box "
                f"[{lay.low}, {lay.high}] (nothing is clipped)"
            )
        return a.round() if lay.integer else a
    if not _is_int(dt):
        raise ValueError(f"action dtype {dt} is not allowed: integer choices (int32/int64) for a discrete action")
    k = len(lay.nvec)
    ok_shapes = [(B,), (B, 1)] if lay.kind == "discrete" else [(B, k)]
    if tuple(a.shape) not in ok_shapes:
        raise ValueError(f"action of shape {tuple(a.shape)}; allowed: {' or '.join(map(str, ok_shapes))}")
    a = a.to(device, torch.long).reshape(B, k)
    nvec = torch.tensor(lay.nvec, device=a.device)
    out = (a < 0) | (a >= nvec)
    if out.any():
        i = out.any(1).nonzero()[0, 0].item()
        raise ValueError(f"action of env {i} is {a[i].tolist()}: each choice must be in 0..n-1 for n in {lay.nvec}")
    mask = action_mask(problem, lay, state)
    if mask is not None:
        offs = torch.tensor([0, *np.cumsum(lay.nvec)[:-1].tolist()], device=a.device)
        allowed = mask.gather(1, a + offs).all(1)
        if not allowed.all():
            i = (~allowed).nonzero()[0, 0].item()
            raise ValueError(
                f"action of env {i} is {a[i].tolist()}: masked (not allowed now); the allowed choices are "
                "where observation['action_mask'] is True (env.action_masks())"
            )
    if lay.levels_of:
        return (lay.low + a.to(problem.dtype)).reshape(B, *lay.levels_of)
    return a[:, 0] if lay.kind == "discrete" else a.reshape(B, *problem.action_spec.shape)


def _is_int(dt: torch.dtype) -> bool:
    return dt in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _put(state: State, idx: torch.Tensor, new: State) -> State:
    if set(new) != set(state):
        raise ValueError("the problem's state keys change between periods; reset all envs together for it")
    out = {}
    for k, v in state.items():
        v = v.clone()
        v[idx] = new[k].to(v.dtype)
        out[k] = v
    return out
