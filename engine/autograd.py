"""What both engines share: the iterative topological sort over `_prev`."""

from __future__ import annotations

from typing import Protocol, TypeVar


class Node(Protocol):
    _prev: tuple


N = TypeVar("N", bound=Node)


def topological_order(root: N) -> list[N]:
    """Every node under root, children before parents, in the articles' DFS order."""
    # The articles' recursive build_topo, unrolled: a marker entry (node, True) appends
    # the node once all of its children are done. Children are pushed reversed so they
    # are visited in call order, which makes the order (and the picture) deterministic.
    topo: list[N] = []
    visited = {root}
    stack: list[tuple[N, bool]] = [(root, False)]
    push = stack.append
    while stack:
        v, done = stack.pop()
        if done:
            topo.append(v)
            continue
        push((v, True))
        for c in reversed(v._prev):
            if c not in visited:
                visited.add(c)
                push((c, False))
    return topo
