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

Stock ``handle()`` also crosses to a thread twice more: for the ``request_started``
receivers (``Signal.asend``) and for ``response.close()`` (``request_finished``). Here the
first runs in the same hop as the view, and so does the second when the response is not
streamed (its content is already in memory, so "finished" may be said before it is
sent). A streamed response (a whole study over WADO-RS) is closed after its last chunk,
as before. Daphne, Twisted and asyncio were three quarters of the CPU of a bare request
(py-spy, docs/benchmarks.md); each hop saved is an event-loop wake-up and a thread switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix

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

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's ``handle()``, with the sync work of a request in one thread hop."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            response, closed = await sync_to_async(self._respond)(scope, body_file)
            await self._send_watching_disconnect(response, send, receive)
            if not closed:
                await sync_to_async(response.close)()
        finally:
            body_file.close()

    def _respond(self, scope: dict[str, Any], body_file: Any) -> tuple[HttpResponseBase, bool]:
        """Run in the lent thread: signals, request, middleware and view; whether closed."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # Django returns one or the other
            return error_response, False
        response = self.get_response(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if response.streaming:
            return response, False
        response.close()
        return response, True

    async def _send_watching_disconnect(
        self, response: HttpResponseBase, send: Any, receive: Any
    ) -> None:
        """Send, and stop sending (a long stream) when the client goes away, as Django does."""
        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        sender = asyncio.create_task(self.send_response(response, send))
        await asyncio.wait([listener, sender], return_when=asyncio.FIRST_COMPLETED)
        for task in (listener, sender):
            if task.done():
                with contextlib.suppress(RequestAborted, asyncio.CancelledError):
                    task.result()
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await task
