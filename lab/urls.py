"""Pages of the lab centre under /lab/ (URL names in the ``lab`` namespace).

Each part of the workflow keeps its own URL module; this one joins them.
"""

from __future__ import annotations

from lab import urls_catalogue, urls_critical, urls_orders, urls_results, urls_shipping, urls_views

app_name = "lab"

urlpatterns = [
    *urls_views.urlpatterns,
    *urls_catalogue.urlpatterns,
    *urls_orders.urlpatterns,
    *urls_shipping.urlpatterns,
    *urls_results.urlpatterns,
    *urls_critical.urlpatterns,
]
