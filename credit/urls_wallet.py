"""Credit URLs: wallet (see credit/urls.py)."""

urlpatterns: list = []
