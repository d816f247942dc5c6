"""A token bucket per connection: ``rate`` messages a second on average, ``burst`` at once."""

from __future__ import annotations

import time
from collections.abc import Callable

RATE_PER_SECOND = 20.0
BURST = 40


class TokenBucket:
    """Starts full; each message takes one token; tokens come back at ``rate`` a second.

    Not shared between connections or processes: a client that opens several sockets
    gets a bucket on each, and each socket is limited on its own.
    """

    def __init__(
        self,
        *,
        rate: float = RATE_PER_SECOND,
        burst: int = BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        """Take one token if there is one; False means the message must be dropped."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
