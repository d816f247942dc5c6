from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AssociationConfig(AppConfig):
    name = "association"
    verbose_name = _("Medical association")

    def ready(self) -> None:
        from association import signals  # noqa: F401  (admin rights follow memberships)
