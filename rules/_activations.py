"""Critical initialization gains by activation, shared by the init and depth rules.

The critical weight variance is Var(W) = gain**2 / fan_in: with it, the mean squared
pre-activation is preserved from layer to layer (chi_1 = 1, Poole et al. 2016; He et al. 2015).
"""

from __future__ import annotations

import math

# gain**2 per activation (torch.nn.init.calculate_gain): ReLU 2 (He), tanh ~ 1 (25/9 by torch's
# convention, but 1 is critical for small biases: theory.md A1), linear/SELU 1 (LeCun).
CRITICAL_GAIN_SQUARED = {
    "ReLU": 2.0, "relu": 2.0, "relu_": 2.0, "ReLU6": 2.0, "relu6": 2.0,
    "LeakyReLU": 2.0 / (1 + 0.01 ** 2), "leaky_relu": 2.0 / (1 + 0.01 ** 2),
    "GELU": 2.0, "gelu": 2.0, "SiLU": 2.0, "silu": 2.0, "Mish": 2.0, "Hardswish": 2.0,
    "Tanh": 1.0, "tanh": 1.0, "Softsign": 1.0, "Hardtanh": 1.0,
    "Sigmoid": 1.0, "sigmoid": 1.0,
    "SELU": 1.0, "selu": 1.0, "ELU": 1.0, "elu": 1.0, "CELU": 1.0,
}
INIT_ADVICE = {
    2.0: 'nn.init.kaiming_normal_({w}, nonlinearity="relu")',
    1.0: "nn.init.xavier_uniform_({w})",
}


def critical_gain_squared(activation: str | None) -> float:
    return CRITICAL_GAIN_SQUARED.get(activation or "", 1.0)


def init_call(activation: str | None, weight: str) -> str:
    """The nn.init call that puts `weight` at the critical scale for `activation`."""
    name = activation or ""
    if critical_gain_squared(name) > 1.5:
        return f'nn.init.kaiming_normal_({weight}, nonlinearity="relu")'
    if name.lower().startswith("selu"):
        return f'nn.init.kaiming_normal_({weight}, nonlinearity="linear")  # LeCun normal for SELU'
    if name.lower().startswith(("tanh", "sigmoid", "softsign", "hardtanh")):
        return f"nn.init.xavier_normal_({weight})"
    return f'nn.init.kaiming_normal_({weight}, nonlinearity="linear")'


def log10(value: float) -> float:
    return math.log10(value) if value > 0 else float("-inf")
