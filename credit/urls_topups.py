"""Credit URLs: topups (see credit/urls.py)."""

urlpatterns: list = []
