"""The billing site project: settings, URLs, the Celery app and project-wide pieces."""

from billing_site.celery import app as celery_app

__all__ = ["celery_app"]
