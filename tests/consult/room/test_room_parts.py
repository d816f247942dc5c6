"""The room's small parts on their own: the token bucket and the roster."""

from __future__ import annotations

import pytest

from consult.room.presence import Participant, Presence, Roster
from consult.room.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=20, burst=40, clock=clock)
    assert all(bucket.take() for _ in range(40))
    assert not bucket.take()
    clock.now += 0.125  # two and a half tokens come back
    assert bucket.take()
    assert bucket.take()
    assert not bucket.take()
    clock.now += 60  # never more than the burst
    assert sum(bucket.take() for _ in range(100)) == 40


def test_bucket_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(rate=0, burst=1)


def test_roster_tracks_connections_per_user_and_their_latest_state() -> None:
    requester = Participant(user_id=7, name="钱医生", role="requester", admitted=False)
    expert = Participant(user_id=3, name="孙主任", role="expert", admitted=True)
    roster = Roster([requester, expert])
    assert [p["online"] for p in roster.as_message()] == [False, False]

    roster.connect("tab-1", Presence(user_id=7, name="钱医生", role="requester", admitted=False))
    roster.connect(
        "tab-2",
        Presence(user_id=7, name="钱医生", role="requester", admitted=False, audio_only=True),
    )
    [expert_entry, mine] = roster.as_message()
    assert expert_entry["user_id"] == 3  # experts first
    assert (mine["online"], mine["audio_only"], mine["peer"]) == (True, True, "u7")

    roster.admit(7)
    roster.disconnect("tab-2", 7)
    mine = roster.as_message()[1]
    assert (mine["online"], mine["admitted"], mine["audio_only"]) == (True, True, False)
    roster.disconnect("tab-1", 7)
    assert roster.as_message()[1]["online"] is False


def test_roster_adds_an_unknown_announcer_and_a_new_publish_replaces_the_old() -> None:
    roster = Roster([])
    roster.connect(
        "a", Presence(user_id=9, name="MDT", role="expert", admitted=True, publishing=True)
    )
    roster.connect(
        "b", Presence(user_id=9, name="MDT", role="expert", admitted=True, publishing=True)
    )
    roster.stop_publishing(9, except_channel="b")
    person = roster.get(9)
    assert person is not None
    assert [c.publishing for c in person.connections.values()] == [False, True]
    assert roster.as_message()[0]["publishing"] is True
