"""Who is in a consult room, as each connection sees it.

There is no shared presence store: every connection keeps its own :class:`Roster`,
started from the database (the requester and the accepted experts, all offline) and
updated from the room's channel-layer group, so it works the same with the in-memory
layer (one process) and with channels-redis (several Daphne processes):

* a connection that opens sends ``room.join`` to the group with its own entry;
* every other connection adds it and answers ``room.announce`` to the joiner's channel
  alone, so the joiner learns who was already there;
* ``room.state`` (audio-only, mute, publishing) and ``room.leave`` update the entry.

A user may hold several connections (two tabs); they are online while one is open.
A process that dies without closing its sockets leaves its users shown online to the
connections that were already open (never to later joiners, who only see announcers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def peer_id(user_id: int) -> str:
    """The media service's peer id of a user (contract C)."""
    return f"u{user_id}"


@dataclass
class Presence:
    """One connection's part of a participant entry, as sent in group events."""

    user_id: int
    name: str
    role: str
    admitted: bool
    audio_only: bool = False
    muted: bool = False
    publishing: bool = False

    def as_event(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> Presence:
        return cls(
            user_id=int(data["user_id"]),
            name=str(data["name"]),
            role=str(data["role"]),
            admitted=bool(data["admitted"]),
            audio_only=bool(data.get("audio_only", False)),
            muted=bool(data.get("muted", False)),
            publishing=bool(data.get("publishing", False)),
        )


@dataclass
class Participant:
    """A member of the room as shown to clients (``presence.participants``)."""

    user_id: int
    name: str
    role: str
    admitted: bool
    # channel name -> that connection's latest state
    connections: dict[str, Presence] = field(default_factory=dict)

    def as_message(self) -> dict[str, Any]:
        latest = next(reversed(self.connections.values()), None)
        return {
            "user_id": self.user_id,
            "name": self.name,
            "role": self.role,
            "peer": peer_id(self.user_id),
            "online": bool(self.connections),
            "admitted": self.admitted,
            "audio_only": latest.audio_only if latest else False,
            "muted": latest.muted if latest else False,
            "publishing": any(c.publishing for c in self.connections.values()),
        }


class Roster:
    """The participants of one room as one connection knows them."""

    def __init__(self, members: list[Participant]) -> None:
        self._people: dict[int, Participant] = {p.user_id: p for p in members}

    def connect(self, channel: str, presence: Presence) -> None:
        """Add or refresh a connection (a join, an announce or a state change)."""
        person = self._people.get(presence.user_id)
        if person is None:
            person = Participant(
                user_id=presence.user_id,
                name=presence.name,
                role=presence.role,
                admitted=presence.admitted,
            )
            self._people[presence.user_id] = person
        person.admitted = person.admitted or presence.admitted
        person.connections.pop(channel, None)  # re-insert: the latest state is last
        person.connections[channel] = presence

    def disconnect(self, channel: str, user_id: int) -> None:
        person = self._people.get(user_id)
        if person is not None:
            person.connections.pop(channel, None)

    def admit(self, user_id: int) -> None:
        person = self._people.get(user_id)
        if person is not None:
            person.admitted = True
            for presence in person.connections.values():
                presence.admitted = True

    def stop_publishing(self, user_id: int, *, except_channel: str | None = None) -> None:
        """A user's other connections stop publishing (a new publish replaced theirs)."""
        person = self._people.get(user_id)
        if person is None:
            return
        for channel, presence in person.connections.items():
            if channel != except_channel:
                presence.publishing = False

    def get(self, user_id: int) -> Participant | None:
        return self._people.get(user_id)

    def as_message(self) -> list[dict[str, Any]]:
        """Experts first, then the requester, each group by user id."""
        people = sorted(self._people.values(), key=lambda p: (p.role != "expert", p.user_id))
        return [p.as_message() for p in people]
