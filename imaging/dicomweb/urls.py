"""DICOMweb (PS3.18) under ``/dicomweb/``: QIDO-RS, WADO-RS, rendered, STOW-RS (POST).

Paths follow the standard without trailing slashes (what dicomweb-client and OHIF send);
a trailing slash is accepted too. UIDs are matched loosely here and validated in the
views, so a malformed one is a JSON 400, not an HTML 404.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, re_path

from imaging.dicomweb import qido, rendered, wado
from imaging.dicomweb.responses import endpoint

app_name = "dicomweb"

UID = r"[^/]+"
STUDY = rf"studies/(?P<study>{UID})"
SERIES = rf"{STUDY}/series/(?P<series>{UID})"
INSTANCE = rf"{SERIES}/instances/(?P<instance>{UID})"
FRAMES = rf"{INSTANCE}/frames/(?P<frames>[^/]+)"
END = r"/?$"


@endpoint()
def service_root(request: HttpRequest) -> HttpResponseBase:
    """The service root: a pointer for people who open it in a browser."""
    return JsonResponse({"service": "DICOMweb", "studies": request.build_absolute_uri("studies")})


urlpatterns: list[URLPattern] = [
    re_path(r"^$", service_root, name="root"),
    re_path(rf"^studies{END}", qido.studies_resource, name="studies"),
    re_path(rf"^series{END}", qido.search_series, name="all-series"),
    re_path(rf"^instances{END}", qido.search_instances, name="all-instances"),
    re_path(rf"^{STUDY}{END}", wado.study_resource, name="study"),
    re_path(rf"^{STUDY}/metadata{END}", wado.study_metadata, name="study-metadata"),
    re_path(rf"^{STUDY}/thumbnail{END}", rendered.study_thumbnail, name="study-thumbnail"),
    re_path(rf"^{STUDY}/series{END}", qido.search_series, name="study-series"),
    re_path(rf"^{STUDY}/instances{END}", qido.search_instances, name="study-instances"),
    re_path(rf"^{SERIES}{END}", wado.retrieve_series, name="series"),
    re_path(rf"^{SERIES}/metadata{END}", wado.series_metadata, name="series-metadata"),
    re_path(rf"^{SERIES}/rendered{END}", rendered.series_rendered, name="series-rendered"),
    re_path(rf"^{SERIES}/thumbnail{END}", rendered.series_thumbnail, name="series-thumbnail"),
    re_path(rf"^{SERIES}/instances{END}", qido.search_instances, name="series-instances"),
    re_path(rf"^{INSTANCE}{END}", wado.retrieve_instance, name="instance"),
    re_path(rf"^{INSTANCE}/metadata{END}", wado.instance_metadata, name="instance-metadata"),
    re_path(rf"^{INSTANCE}/rendered{END}", rendered.instance_rendered, name="instance-rendered"),
    re_path(rf"^{INSTANCE}/thumbnail{END}", rendered.instance_thumbnail, name="instance-thumbnail"),
    re_path(rf"^{INSTANCE}/bulk/(?P<tag>[^/]+){END}", wado.retrieve_bulk, name="bulk"),
    re_path(rf"^{FRAMES}{END}", wado.retrieve_frames, name="frames"),
    re_path(rf"^{FRAMES}/rendered{END}", rendered.frame_rendered, name="frame-rendered"),
    re_path(rf"^{FRAMES}/thumbnail{END}", rendered.frame_thumbnail, name="frame-thumbnail"),
]
