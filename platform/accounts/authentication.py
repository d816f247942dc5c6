"""Bearer tokens for machine clients (DICOM tools, scripts), as DESIGN.md promises."""

from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """``Authorization: Bearer <token>``; DRF's own scheme word is ``Token``."""

    keyword = "Bearer"
