"""Credit in the portal (namespace `credit`, mounted at /credit/).

Areas: the wallet pages (urls_wallet.py) and top-ups (urls_topups.py).
"""

from django.urls import include, path

app_name = "credit"

urlpatterns = [
    path("", include("credit.urls_wallet")),
    path("", include("credit.urls_topups")),
]
