"""Placeholder: filled by its part of the lab workflow."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
