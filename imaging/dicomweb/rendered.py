"""``/rendered`` and ``/thumbnail`` views (PS3.18 §10.4.1.1.3, §10.4.1.1.4).

Query parameters: ``window=center,width[,function]``, ``viewport=vw,vh[,sx,sy,sw,sh]``,
``quality`` (JPEG, 1-100) and ``accept`` (``image/jpeg`` or ``image/png``, overriding the
``Accept`` header, handy for ``<img src>``). Other rendering parameters of PS3.18
(``annotation``, ``charset``, ``iccprofile``) are accepted and have no effect.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _

from imaging.dicomweb.access import instance_for, series_for, study_for
from imaging.dicomweb.negotiate import negotiate_rendered
from imaging.dicomweb.pixels import InstancePixels
from imaging.dicomweb.render import (
    THUMBNAIL_SIZE,
    RenderOptions,
    Viewport,
    parse_quality,
    parse_viewport,
    parse_window,
    render_frame,
)
from imaging.dicomweb.responses import CACHE_PIXELS, BadRequest, Missing, check_uids, endpoint
from imaging.dicomweb.wado import ACTION
from imaging.models import Instance, Series


def _options(request: HttpRequest, *, thumbnail: bool) -> RenderOptions:
    params = request.GET
    media_type = negotiate_rendered(request)
    window = parse_window(params["window"]) if params.get("window") else None
    viewport = parse_viewport(params["viewport"]) if params.get("viewport") else None
    quality = parse_quality(params["quality"]) if params.get("quality") else 90
    if thumbnail and viewport is None:
        viewport = Viewport(width=THUMBNAIL_SIZE, height=THUMBNAIL_SIZE)
    return RenderOptions(
        media_type=media_type,
        window=window,
        viewport=viewport,
        quality=quality,
        upscale=not thumbnail,
    )


def _image(
    request: HttpRequest, instance: Instance, number: int, *, thumbnail: bool
) -> HttpResponseBase:
    options = _options(request, thumbnail=thumbnail)
    with InstancePixels(instance) as pixels:
        index = pixels.check_frame(number)
        body = render_frame(pixels, index, options)
    response = HttpResponse(body, content_type=options.media_type)
    response["Cache-Control"] = CACHE_PIXELS
    return response


def _instance(request: HttpRequest, study: str, series: str, instance: str) -> Instance:
    check_uids(study_uid=study, series_uid=series, sop_instance_uid=instance)
    return instance_for(
        actor=request.user, study_uid=study, series_uid=series, sop_uid=instance, action=ACTION
    )


def _middle_instance(series: Series) -> Instance:
    """The instance in the middle of the series by Instance Number (what a viewer shows)."""
    instances = Instance.objects.filter(series=series).order_by("instance_number", "pk")
    count = instances.count()
    found = instances[count // 2] if count else None
    if found is None:
        raise Missing(_("This series has no instances."))
    return found


def _single_frame(frames: str) -> int:
    if not frames.isdigit() or int(frames) < 1:
        raise BadRequest(_("Render one frame at a time: a number from 1."))
    return int(frames)


@endpoint()
def instance_rendered(
    request: HttpRequest, study: str, series: str, instance: str
) -> HttpResponseBase:
    """The first frame of the instance (PS3.18 leaves multi-frame output to the server)."""
    return _image(request, _instance(request, study, series, instance), 1, thumbnail=False)


@endpoint()
def frame_rendered(
    request: HttpRequest, study: str, series: str, instance: str, frames: str
) -> HttpResponseBase:
    number = _single_frame(frames)
    return _image(request, _instance(request, study, series, instance), number, thumbnail=False)


@endpoint()
def instance_thumbnail(
    request: HttpRequest, study: str, series: str, instance: str
) -> HttpResponseBase:
    return _image(request, _instance(request, study, series, instance), 1, thumbnail=True)


@endpoint()
def frame_thumbnail(
    request: HttpRequest, study: str, series: str, instance: str, frames: str
) -> HttpResponseBase:
    number = _single_frame(frames)
    return _image(request, _instance(request, study, series, instance), number, thumbnail=True)


@endpoint()
def series_rendered(request: HttpRequest, study: str, series: str) -> HttpResponseBase:
    """The middle instance of the series, rendered."""
    check_uids(study_uid=study, series_uid=series)
    found = series_for(actor=request.user, study_uid=study, series_uid=series, action=ACTION)
    return _image(request, _middle_instance(found), 1, thumbnail=False)


@endpoint()
def series_thumbnail(request: HttpRequest, study: str, series: str) -> HttpResponseBase:
    check_uids(study_uid=study, series_uid=series)
    found = series_for(actor=request.user, study_uid=study, series_uid=series, action=ACTION)
    return _image(request, _middle_instance(found), 1, thumbnail=True)


@endpoint()
def study_thumbnail(request: HttpRequest, study: str) -> HttpResponseBase:
    """The middle instance of the study's first series with pixels."""
    check_uids(study_uid=study)
    found = study_for(actor=request.user, study_uid=study, action=ACTION)
    first = (
        Series.objects.filter(study=found, instances__rows__isnull=False)
        .order_by("series_number", "pk")
        .first()
    )
    if first is None:
        raise Missing(_("This study has no images."))
    return _image(request, _middle_instance(first), 1, thumbnail=True)
