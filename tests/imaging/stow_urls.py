"""A test-only URL conf: STOW-RS behind the DICOMweb endpoint decorator (auth, CORS, CSRF).

Lets the STOW tests run before and apart from the DICOMweb URL conf, which mounts the
same view.
"""

from __future__ import annotations

from django.urls import path

from imaging.dicomweb.responses import endpoint
from imaging.dicomweb.stow import stow

store = endpoint(("POST",))(stow)

urlpatterns = [
    path("dicomweb/studies", store, {"study_uid": None}),
    path("dicomweb/studies/<str:study_uid>", store),
]
