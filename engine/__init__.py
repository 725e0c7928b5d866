"""Gradscope's from-scratch autograd engine (numpy only at run time).

`Value` is the scalar engine of the two articles; `Tensor` the numpy one for real networks.
The API is shaped like PyTorch's: `engine.nn`, `engine.nn.functional`, `engine.optim`.
"""

from gradscope.engine.autograd import AnomalyError, detect_anomaly, is_grad_enabled, no_grad
from gradscope.engine.nn import manual_seed
from gradscope.engine.scalar import Value
from gradscope.engine.tensor import (
    Tensor,
    cat,
    concat,
    float32,
    float64,
    from_numpy,
    int64,
    tensor,
)

__all__ = [
    "AnomalyError",
    "Tensor",
    "Value",
    "cat",
    "concat",
    "detect_anomaly",
    "float32",
    "float64",
    "from_numpy",
    "int64",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "tensor",
]
