from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ObjectStoreConfig(AppConfig):
    name = "objectstore"
    verbose_name = _("Object storage")

    def ready(self) -> None:
        from django.test.signals import setting_changed

        from objectstore.registry import reset_on_setting_change

        setting_changed.connect(reset_on_setting_change, dispatch_uid="objectstore-reset")
