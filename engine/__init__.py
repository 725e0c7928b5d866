"""Gradscope's from-scratch autograd engine (numpy only at run time)."""

from engine.scalar import Value

__all__ = ["Value"]
