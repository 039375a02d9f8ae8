"""Neural building blocks: MLPs, action heads that respect an action's domain, policies.

``opsrl.nn`` imports only ``opsrl.core``.
"""

from .gnn import GNNPolicy
from .actor_critic import ActionHead, MLPActorCritic, build_actor_critic
from .mlp import MLP, POLICY_SCHEMA, MLPPolicy, box_head, build_policy
from .two_stage import TwoStageActorCritic

__all__ = ["ActionHead", "MLPActorCritic", "build_actor_critic", "GNNPolicy", "MLP", "MLPPolicy", "POLICY_SCHEMA", "box_head", "build_policy"]
