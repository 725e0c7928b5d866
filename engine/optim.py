"""engine.optim: SGD, Adam, AdamW and learning-rate schedules, PyTorch's update rules.

Updates happen in place into preallocated buffers: a training step allocates nothing
here once the first step has made the state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from gradscope.engine import blas
from gradscope.engine.tensor import Tensor

MAX_STEPS = 1 << 53  # past this a count is no longer exact as a float (b1 ** step)


class Optimizer:
    """Holds the parameters, their per-parameter state and the hyperparameters."""

    hyper_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if not all(isinstance(p, Tensor) and p.requires_grad for p in self.params):
            raise TypeError("optimizer parameters must be tensors that require grad")
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.steps = 0  # step() calls
        # Updates each parameter has had: one whose grad was None on a step missed it,
        # and Adam's bias correction follows this count, as torch's state["step"] does.
        self.param_steps = [0] * len(self.params)
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        self._scratch = [np.empty_like(p.data) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.steps += 1
        counts = self.param_steps
        for i, p in enumerate(self.params):
            if p.grad is not None:  # no gradient, no update and no step: as in PyTorch
                counts[i] += 1
                self._update(i, p, p.grad)

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        raise NotImplementedError

    def hyper(self) -> dict[str, Any]:
        return {"lr": self.lr, **{k: getattr(self, k) for k in self.hyper_names}}

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, step counts and copies of every buffer (a resumable snapshot)."""
        return {
            "type": type(self).__name__,
            "hyper": self.hyper(),
            "steps": self.steps,
            "param_steps": list(self.param_steps),
            "state": [{k: v.copy() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd.get("type") != type(self).__name__:
            raise ValueError(f"state dict is for {sd.get('type')}, not {type(self).__name__}")
        if len(sd["state"]) != len(self.params):
            raise ValueError(
                f"state dict has {len(sd['state'])} parameters, this optimizer {len(self.params)}"
            )
        for s, p in zip(sd["state"], self.params):
            for k, v in s.items():
                if np.shape(v) != p.shape:
                    raise ValueError(f"optimizer buffer {k}: shape {np.shape(v)}, param {p.shape}")
        steps = int(sd["steps"])
        param_steps = sd.get("param_steps")
        if param_steps is None:
            # A snapshot from before steps were per parameter: the global count was the one
            # every parameter with state had been corrected with.
            param_steps = [steps if s else 0 for s in sd["state"]]
        if len(param_steps) != len(self.params) or not all(
            isinstance(n, int | np.integer) and not isinstance(n, bool) and 0 <= n <= MAX_STEPS
            for n in param_steps
        ):
            raise ValueError(f"param_steps {param_steps!r} are not {len(self.params)} counts")
        unknown = set(sd["hyper"]) - {"lr", *self.hyper_names}
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} hyperparameters {sorted(unknown)}")
        for k, v in sd["hyper"].items():
            setattr(self, k, v)
        self.steps = steps
        self.param_steps = [int(n) for n in param_steps]
        self.state = [
            {k: np.array(v, dtype=p.dtype) for k, v in s.items()}
            for s, p in zip(sd["state"], self.params)
        ]


def _descend(w: np.ndarray, g: np.ndarray, lr: float, scratch: np.ndarray) -> None:
    """w -= lr * g in place: one pass by BLAS where it can, else two through scratch."""
    if w.size < blas.MIN_SIZE or not blas.axpy(-lr, g, w):
        w -= np.multiply(g, lr, out=scratch)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and weight decay."""

    hyper_names = ("momentum", "dampening", "nesterov", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and no dampening")
        if momentum < 0 or weight_decay < 0:
            raise ValueError("momentum and weight_decay must be >= 0")
        self.momentum, self.dampening = momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay

    def step(self) -> None:
        if self.momentum or self.weight_decay:
            super().step()
            return
        # Plain SGD, the common case, in one loop without the per-parameter dispatch.
        self.steps += 1
        lr, min_size, counts = self.lr, blas.MIN_SIZE, self.param_steps
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            counts[i] += 1
            w = p.data
            if w.size < min_size or not blas.axpy(-lr, g, w):
                w -= np.multiply(g, lr, out=self._scratch[i])  # what _descend does, inlined

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = self.state[i].get("momentum_buffer")
            if buf is None:
                buf = self.state[i]["momentum_buffer"] = np.array(g, dtype=p.dtype)
            else:
                buf *= self.momentum
                buf += g if not self.dampening else (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        _descend(p.data, g, self.lr, self._scratch[i])


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias correction; weight_decay is L2 on the grad."""

    hyper_names = ("betas", "eps", "weight_decay")
    decoupled = False
    default_weight_decay = 0.0

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,
    ) -> None:
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if weight_decay is None:  # PyTorch's defaults: 0 for Adam, 0.01 for AdamW
            weight_decay = self.default_weight_decay
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p.data *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p.data
        s = self.state[i]
        if not s:
            s["exp_avg"] = np.zeros_like(p.data)
            s["exp_avg_sq"] = np.zeros_like(p.data)
        m, v, tmp = s["exp_avg"], s["exp_avg_sq"], self._scratch[i]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        t = self.param_steps[i]  # this parameter's own count: it may have joined late
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        np.sqrt(v, out=tmp)
        tmp /= math.sqrt(bc2)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr / bc1
        p.data -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    decoupled = True
    default_weight_decay = 1e-2


class LRScheduler:
    """Sets optimizer.lr from the number of `step()` calls so far (usually epochs)."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self) -> float:
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.base_lr, self.last_epoch = float(sd["base_lr"]), int(sd["last_epoch"])
        self.optimizer.lr = self.lr_at(self.last_epoch)


class StepLR(LRScheduler):
    """Multiply the learning rate by gamma every step_size epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Anneal from the base rate to eta_min along half a cosine over t_max epochs.

    Past t_max the cosine carries on (back up), exactly as PyTorch's does.
    """

    def __init__(self, optimizer: Optimizer, t_max: int, eta_min: float = 0.0) -> None:
        if t_max < 1:
            raise ValueError(f"t_max must be >= 1, got {t_max}")
        super().__init__(optimizer)
        self.t_max, self.eta_min = t_max, eta_min

    def lr_at(self, epoch: int) -> float:
        cos = math.cos(math.pi * epoch / self.t_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + cos) / 2


class WarmupLinearLR(LRScheduler):
    """One cycle per run, stepped once per optimizer step: the rate rises linearly from
    base/warm to base over the first `warmup` share of total_steps, then falls linearly
    to reach 0 at step total_steps (and stays there). A constant rate leaves a small CNN
    ~0.8% short of what this gives it in one epoch of MNIST (docs/benchmarks.md)."""

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup: float = 0.1) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0 <= warmup <= 1:
            raise ValueError(f"warmup must be a share in [0, 1], got {warmup}")
        super().__init__(optimizer)
        self.total_steps, self.warmup = total_steps, warmup
        # Warm-up steps: at least one whenever there is a warm-up at all.
        self.warm = max(1, int(warmup * total_steps)) if warmup > 0 else 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, epoch: int) -> float:
        """The rate of step `epoch` (0-based: the steps taken before it)."""
        if epoch < self.warm:
            return self.base_lr * (epoch + 1) / self.warm
        frac = (epoch - self.warm) / max(1, self.total_steps - self.warm)
        return self.base_lr * max(0.0, 1.0 - frac)
