"""What travels on the websockets, declared as code like the events it carries (events.py):
the history and frame a run's page opens with, the hello, event batches, and the run list."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import with_config
from typing_extensions import TypedDict

from gradscope.server.runs.events import STRICT, Event, adapter, validate_event

# -- history and frames ---------------------------------------------------------------------


@with_config(STRICT)
class HistorySeries(TypedDict):
    """One series in buckets: each bucket's first step, min, max and last value."""

    step: list[int]
    min: list[float]
    max: list[float]
    last: list[float]


# Every series of a run over steps from..to, at most `points` buckets each (Store.history);
# declared as a call because `from` is a Python keyword, so configured by a call too.
History = TypedDict(
    "History", {"from": int, "to": int, "points": int, "series": dict[str, HistorySeries]}
)
with_config(STRICT)(History)


@with_config(STRICT)
class Frame(TypedDict):
    """The whole picture at one step: the latest event of each snapshot type at or before it."""

    step: int
    events: list[Event]


# -- websocket messages -------------------------------------------------------------------


@with_config(STRICT)
class HelloMessage(TypedDict):
    """First message of /ws/runs/{id}: the run, its config, its history and its latest frame."""

    kind: Literal["hello"]
    run: dict[str, Any]
    config: dict[str, Any]
    last_seq: int
    steps_per_epoch: int | None
    history: History
    frame: Frame | None


@with_config(STRICT)
class EventsMessage(TypedDict):
    """A batch of events of one run, in seq order."""

    kind: Literal["events"]
    events: list[Event]


@with_config(STRICT)
class RunsMessage(TypedDict):
    """/ws/runs: the whole run list (full) or the runs changed and deleted since."""

    kind: Literal["runs"]
    full: NotRequired[bool]
    runs: list[dict[str, Any]]
    deleted: list[str]


MESSAGES: dict[str, type] = {
    "hello": HelloMessage,
    "events": EventsMessage,
    "runs": RunsMessage,
}


def validate_message(message: dict[str, Any]) -> None:
    """Raise ValueError unless a websocket message (and any events in it) matches its type."""
    kind = message.get("kind")
    if kind not in MESSAGES:
        raise ValueError(f"unknown websocket message kind {kind!r}")
    adapter(MESSAGES[kind]).validate_python(message)
    frame = message.get("frame") or {}
    for event in [*message.get("events", []), *frame.get("events", [])]:
        validate_event(event)
