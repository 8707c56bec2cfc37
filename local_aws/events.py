"""EventBridge: ``TestEventPattern``, which moto 5.2.5 answers with nothing, matched with moto's own
rule matcher (the one its PutEvents uses). No state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from moto.events.models import EventPattern, EventPatternParser
from moto.events.responses import EventsHandler

from local_aws.core import error

__all__ = ["RESPONSES", "match_event_pattern"]

_EVENT_FIELDS: Final = ("id", "account", "source", "time", "region", "detail-type")


def match_event_pattern(self: EventsHandler) -> str:
    """TestEventPattern (moto 5.2.5 answers nothing): matched with moto's own rule matcher, the one its
    PutEvents uses, after AWS's check that the event has the fields every event carries."""
    raw_pattern = self._get_param("EventPattern")
    try:
        event = json.loads(self._get_param("Event") or "")
    except json.JSONDecodeError:
        raise error("InvalidEventPatternException", "Event is not valid JSON") from None
    missing = [name for name in _EVENT_FIELDS if name not in event]
    if missing:
        raise error("InvalidEventPatternException", f"Event is missing required field(s): {', '.join(missing)}")
    pattern = EventPattern(raw_pattern, EventPatternParser(raw_pattern).parse())
    return json.dumps({"Result": pattern.matches_event(event)})


RESPONSES: Final[dict[str, Callable[..., object]]] = {"test_event_pattern": match_event_pattern}
"""What the emulator adds to moto's ``EventsHandler``, by method name."""
