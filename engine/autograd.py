"""What both engines share: the iterative topological sort over `_prev`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeVar


class Node(Protocol):
    _prev: tuple


N = TypeVar("N", bound=Node)


def topological_order(root: N) -> list[N]:
    """Every node under root, children before parents, in the articles' DFS order."""
    # The articles' recursive build_topo, unrolled: each stack entry holds a node and an
    # iterator over its children (in call order, so the order and the picture are
    # deterministic); a node is appended once its iterator is exhausted.
    topo: list[N] = []
    visited = {root}
    stack: list[tuple[N, Iterator[N]]] = [(root, iter(root._prev))]
    while stack:
        v, children = stack[-1]
        for c in children:
            if c not in visited:
                visited.add(c)
                stack.append((c, iter(c._prev)))
                break
        else:
            stack.pop()
            topo.append(v)
    return topo
