"""A Server-Sent Events client for tests: events as they arrive over a real HTTP connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class Event:
    """One event block: its fields, the comments in it, and when it arrived (``time.monotonic()``)."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    at: float = 0.0

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def parse(block: str, at: float) -> Event:
    event = Event(at=at)
    data: list[str] = []
    for line in block.split("\n"):
        if line.startswith(":"):
            event.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event.id = value
        elif name == "event":
            event.event = value
        elif name == "data":
            data.append(value)
        elif name == "retry":
            event.retry = int(value)
    event.data = "\n".join(data)
    return event


class EventStream:
    """``GET url`` with ``Accept: text/event-stream``; iterate for events until the server ends it."""

    def __init__(self, url: str, headers: dict[str, str], *, timeout: float = 30.0) -> None:
        self.response = requests.get(
            url, headers={"Accept": "text/event-stream", **headers}, stream=True, timeout=timeout
        )
        self._chunks = self.response.iter_content(chunk_size=None)
        self._buffer = b""
        self.raw = b""

    def __iter__(self) -> Iterator[Event]:
        while True:
            while b"\n\n" not in self._buffer:
                chunk = next(self._chunks, None)
                if chunk is None:
                    return
                self._buffer += chunk
                self.raw += chunk
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            yield parse(block.decode(), time.monotonic())

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
