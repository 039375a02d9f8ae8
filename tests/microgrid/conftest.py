import pytest
import torch

from opsrl.core import Scenarios
from opsrl.microgrid import build

OFF, WARM, RUN, COOL = 0, 1, 2, 3


def make_problem(**overrides):
    return build(dict(overrides), "<test>")


def fixed_scenario(problem, demand, wind, soc0=0.5, mode0=None, run0=None, timer0=None, history_kw=200.0):
    """One or more hand-made scenarios: constant or given series (``[B, T + 1 + lead]`` built here)."""
    p = problem.p
    demand = torch.as_tensor(demand, dtype=torch.float32)
    wind = torch.as_tensor(wind, dtype=torch.float32)
    if demand.dim() == 1:
        demand, wind = demand[None], wind[None]
    B, L = demand.shape
    T = L - 1
    pad = max(problem.leads)
    demand = torch.cat([demand, demand[:, -1:].expand(B, pad)], 1)
    wind = torch.cat([wind, wind[:, -1:].expand(B, pad)], 1)
    F = len(problem.leads)
    mode = torch.full((B, p.G), float(OFF)) if mode0 is None else torch.as_tensor(mode0, dtype=torch.float32)
    data = {
        "demand": demand,
        "wind": wind,
        "fc_demand": demand[:, 1 : T + 1, None].expand(B, T, F).clone(),
        "fc_wind": wind[:, 1 : T + 1, None].expand(B, T, F).clone(),
        "start_minute": torch.zeros(B),
        "history": torch.full((B, p.G, 48), history_kw),
        "soc0": torch.full((B,), soc0),
        "mode0": mode,
        "timer0": torch.zeros(B, p.G) if timer0 is None else torch.as_tensor(timer0, dtype=torch.float32),
        "run0": torch.zeros(B, p.G) if run0 is None else torch.as_tensor(run0, dtype=torch.float32),
    }
    return Scenarios(data, "test", 0, T)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)
    yield
