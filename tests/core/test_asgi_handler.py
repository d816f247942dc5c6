"""The platform's ASGI handler: one thread hop per request, on a lent long-lived thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from channels.testing import HttpCommunicator

from config.asgi import django_asgi_app
from config.asgi_handler import PlatformASGIHandler, _LentThread, _ThreadPool


def _thread() -> int:
    return threading.get_ident()


async def _threads_of_one_request(pool: _ThreadPool, calls: int = 3) -> set[int]:
    lent = _LentThread(pool)
    try:
        async with ThreadSensitiveContext(executor=lent):
            return {await sync_to_async(_thread)() for _ in range(calls)}
    finally:
        lent.release()


async def test_a_request_is_answered_through_the_full_asgi_stack() -> None:
    response: dict[str, Any] = await HttpCommunicator(
        django_asgi_app, "GET", "/health/live", headers=[(b"host", b"127.0.0.1")]
    ).get_response(timeout=30)  # the first request imports every URLconf (seconds when cold)
    assert response["status"] == 200
    assert b'"ok"' in response["body"]


def test_the_middleware_chain_runs_in_sync_mode() -> None:
    handler = PlatformASGIHandler()
    assert not iscoroutinefunction(handler._middleware_chain)


async def test_all_sync_work_of_one_request_runs_on_one_thread() -> None:
    threads = await _threads_of_one_request(_ThreadPool(2))
    assert len(threads) == 1
    assert threading.get_ident() not in threads  # never on the event loop's thread


async def test_the_next_request_reuses_the_same_warm_thread() -> None:
    pool = _ThreadPool(2)
    first = await _threads_of_one_request(pool)
    second = await _threads_of_one_request(pool)
    assert first == second


async def test_concurrent_requests_run_on_different_threads() -> None:
    pool = _ThreadPool(2)
    started = threading.Barrier(2, timeout=5)

    def meet() -> int:
        started.wait()  # both requests are inside their views at the same time
        return threading.get_ident()

    async def request() -> int:
        lent = _LentThread(pool)
        try:
            async with ThreadSensitiveContext(executor=lent):
                return await sync_to_async(meet)()
        finally:
            lent.release()

    first, second = await asyncio.gather(request(), request())
    assert first != second


async def test_a_request_beyond_the_pool_gets_a_thread_of_its_own() -> None:
    pool = _ThreadPool(1)
    held, pooled = pool.take()
    assert pooled
    extra = _LentThread(pool)
    extra.submit(_thread).result(timeout=5)
    extra_executor = extra._executor
    assert isinstance(extra_executor, ThreadPoolExecutor)
    assert not extra._pooled
    extra.release()
    assert extra_executor._shutdown
    pool.give_back(held)
    assert pool.take() == (held, True)


class _Signals:
    """Which request signals fired, and on which thread."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished: list[int] = []

    def on_started(self, **_kwargs: Any) -> None:
        self.started.append(threading.get_ident())

    def on_finished(self, **_kwargs: Any) -> None:
        self.finished.append(threading.get_ident())


async def _request(path: str, fired: _Signals) -> dict[str, Any]:
    from django.core import signals

    signals.request_started.connect(fired.on_started)
    signals.request_finished.connect(fired.on_finished)
    try:
        return await HttpCommunicator(
            django_asgi_app, "GET", path, headers=[(b"host", b"127.0.0.1")]
        ).get_response(timeout=30)
    finally:
        signals.request_started.disconnect(fired.on_started)
        signals.request_finished.disconnect(fired.on_finished)


async def test_request_signals_run_in_the_same_thread_hop_as_the_view() -> None:
    fired = _Signals()
    response = await _request("/health/live", fired)
    assert response["status"] == 200
    assert len(fired.started) == 1
    assert len(fired.finished) == 1
    # started, the view and finished (the response is in memory) share one hop
    assert fired.started == fired.finished
    assert threading.get_ident() not in fired.started


async def test_a_missing_page_still_starts_and_finishes_the_request() -> None:
    fired = _Signals()
    response = await _request("/no-such-page/", fired)
    assert response["status"] == 404
    assert len(fired.started) == 1
    assert len(fired.finished) == 1
