"""Methods that work on every problem through the contract: HDPO, PPO and PDPPO (Lagrangian rules to come).

``opsrl.algos`` imports only ``opsrl.core`` (and ``opsrl.nn`` for the policies it builds).
"""

from . import hdpo, lagrangian, ppo, rollout_pi

METHODS = {
    m.name: m
    for m in (
        hdpo.METHOD,
        ppo.METHOD,
        ppo.PD_METHOD,
        lagrangian.METHOD,
        lagrangian.LSTM_METHOD,
        lagrangian.LINEAR_METHOD,
        rollout_pi.METHOD,
    )
}

__all__ = ["METHODS", "hdpo", "ppo", "rollout_pi"]
