"""opsrl: differentiable, batched operations simulators and the methods that control them."""

__version__ = "0.1.0"
