"""Django's ASGI handler, with the middleware chain run in one thread hop on a warm thread.

Stock ``ASGIHandler`` costs several milliseconds per request before any view code runs
(measured in docs/benchmarks.md, "Imaging: ours vs Orthanc"):

* it builds the middleware chain in async mode, so each sync-only middleware and each
  ``MiddlewareMixin`` hook is a separate hop between the event loop and a worker thread
  (about six per request here);
* it gives every request a new thread (``ThreadSensitiveContext``), and database
  connections belong to threads, so every request also opened a new SQLite connection.

:class:`PlatformASGIHandler` builds the chain in sync mode and runs it with the view in
a single ``sync_to_async`` call, on a thread lent from a small pool of long-lived
threads (which keep their connections; ``CONN_MAX_AGE`` and the request signals still
decide when those close). As before, all sync work of one request (signals, view,
streamed chunks, ``close()``) runs on one thread, and requests still run side by side:
the thread is lent at the first sync call, after the body has arrived, and when every
pooled thread is busy a request gets a thread of its own, as stock Django does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest
from django.http.response import HttpResponseBase

P = ParamSpec("P")
T = TypeVar("T")

POOL_THREADS = 4


class _ThreadPool:
    """Idle single-thread executors, most recently used first (its connection is warm)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._idle: list[ThreadPoolExecutor] = []
        self._created = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[ThreadPoolExecutor, bool]:
        """An executor and whether it is pooled (to give back) or a one-off (to shut down)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
            if self._created < self._size:
                self._created += 1
                return ThreadPoolExecutor(1, thread_name_prefix="django-sync"), True
        return ThreadPoolExecutor(1, thread_name_prefix="django-sync-extra"), False

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            self._idle.append(executor)


class _LentThread(Executor):
    """One request's thread, taken from the pool at the first call and kept until the end."""

    def __init__(self, pool: _ThreadPool) -> None:
        self._pool = pool
        self._executor: ThreadPoolExecutor | None = None
        self._pooled = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._executor is None:
            self._executor, self._pooled = self._pool.take()
        return self._executor.submit(fn, *args, **kwargs)

    def release(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._pooled:
            # Work still queued (a view outliving a disconnected client) runs before the
            # next request's: the executor has a single thread.
            self._pool.give_back(executor)
        else:
            executor.shutdown(wait=False)


class PlatformASGIHandler(ASGIHandler):
    """``ASGIHandler`` with a sync middleware chain and pooled request threads."""

    def __init__(self, threads: int = POOL_THREADS) -> None:
        self._pool = _ThreadPool(threads)
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        # Sync mode: the chain and a sync view run without a hop between them.
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await sync_to_async(self.get_response)(request)
        return response

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        lent = _LentThread(self._pool)
        try:
            async with ThreadSensitiveContext(executor=lent):
                await self.handle(scope, receive, send)
        finally:
            lent.release()
