"""Neural building blocks: MLPs, action heads that respect an action's domain, policies.

``opsrl.nn`` imports only ``opsrl.core``.
"""

from .actor_critic import ActionHead, MLPActorCritic, build_actor_critic
from .gnn import GNNPolicy
from .mlp import MLP, POLICY_SCHEMA, MLPPolicy, box_head, build_policy
from .two_stage import TwoStageActorCritic

__all__ = [
    "ActionHead",
    "MLPActorCritic",
    "build_actor_critic",
    "GNNPolicy",
    "MLP",
    "MLPPolicy",
    "POLICY_SCHEMA",
    "box_head",
    "build_policy",
    "TwoStageActorCritic",
]
