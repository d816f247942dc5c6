"""What every DICOMweb view shares: errors as JSON, DICOM JSON, streaming, the decorator.

Errors are ``{"detail": "..."}`` in the reader's language. The selectors' ``AccessDenied``
and ``NotFound`` (already audited there) become 403 and 404; a malformed parameter is a
400, an unsatisfiable ``Accept`` a 406. Nothing a client sends produces a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from imaging.dicom.validate import is_valid_uid
from imaging.dicomweb.auth import dicomweb_auth
from imaging.dicomweb.cors import with_cors
from imaging.dicomweb.pixels import PixelError
from imaging.dicomweb.query import QueryError
from objectstore import ObjectNotFound, StoreUnavailable
from records.selectors import AccessDenied, NotFound

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]
DICOM_JSON = "application/dicom+json"
CACHE_PIXELS = "private, max-age=3600"
CACHE_QUERY = "private, no-cache"


class DicomwebError(Exception):
    """An answer other than 2xx, with a message for a person."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(DicomwebError):
    status = 400


class NotAcceptable(DicomwebError):
    status = 406


class Missing(DicomwebError):
    status = 404


def error_response(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"detail": message}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def dicom_json_response(payload: list[dict[str, Any]] | bytes, **headers: str) -> HttpResponseBase:
    """A DICOM JSON array (``application/dicom+json``), never cached by shared caches."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = HttpResponse(body, content_type=DICOM_JSON)
    response["Cache-Control"] = CACHE_QUERY
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class _AsyncChunks:
    """Serve a blocking chunk generator under ASGI without collecting it first.

    Django's ASGI handler turns a *synchronous* iterator into a list before sending
    (all of it in memory); each chunk is instead pulled in the sync thread (database and
    object store calls stay where Django expects them).
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        pull = sync_to_async(_next_or_none, thread_sensitive=True)
        while (chunk := await pull(self._chunks)) is not None:
            yield chunk

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def _next_or_none(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


def streaming_response(
    request: HttpRequest, chunks: Iterator[bytes], *, content_type: str, cache: str
) -> StreamingHttpResponse:
    """Stream ``chunks``; memory stays flat under WSGI and ASGI alike."""
    content: Any = _AsyncChunks(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Cache-Control"] = cache
    return response


_UID_NAMES = {
    "study_uid": "StudyInstanceUID",
    "series_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
}


def check_uids(**uids: str) -> None:
    """Refuse a path whose UIDs are not UIDs (400) before touching the database."""
    for name, value in uids.items():
        if not is_valid_uid(value):
            raise BadRequest(
                _("The %(name)s in the path is not a valid UID.")
                % {"name": _UID_NAMES.get(name, name)}
            )


def post_stow(request: HttpRequest, study: str | None) -> HttpResponseBase:
    """Hand a POST to STOW-RS (``imaging.dicomweb.stow``, another module); 501 until it exists."""
    try:
        from imaging.dicomweb.stow import stow  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise DicomwebError(
            _("Storing (STOW-RS) is not available on this server yet."), status=501
        ) from None
    response: HttpResponseBase = stow(request, study)
    return response


def _handle_errors(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except DicomwebError as exc:
            return error_response(exc.status, exc.message)
        except QueryError as exc:
            return error_response(400, exc.message)
        except PixelError as exc:
            return error_response(exc.status, exc.message)
        except ObjectNotFound:
            logger.error("stored object missing for %s", request.path)
            return error_response(404, _("The stored file is missing; tell the administrator."))
        except StoreUnavailable:
            logger.exception("object store unavailable")
            return error_response(503, _("The image store is not reachable; try again later."))
        except AccessDenied as exc:
            return error_response(403, str(exc))
        except NotFound as exc:
            return error_response(404, str(exc))

    return wrapper


def _allow_methods(methods: tuple[str, ...]) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                response = error_response(
                    405, _("Method %(method)s is not allowed here.") % {"method": request.method}
                )
                response["Allow"] = ", ".join((*methods, "OPTIONS"))
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def endpoint(methods: tuple[str, ...] = ("GET", "HEAD")) -> Callable[[View], View]:
    """CORS, allowed methods, authentication and JSON errors around a DICOMweb view.

    Views are CSRF-exempt for machine clients; :func:`~imaging.dicomweb.auth.dicomweb_auth`
    still checks the token on writes authenticated only by a session cookie.
    """

    def decorator(view: View) -> View:
        wrapped = with_cors(methods)(_allow_methods(methods)(dicomweb_auth(_handle_errors(view))))
        return csrf_exempt(wrapped)

    return decorator
