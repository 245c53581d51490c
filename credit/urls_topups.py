"""Credit URLs: top-ups (see credit/urls.py)."""

from django.urls import path

from credit.views import topups

urlpatterns = [
    path("<slug:platform_code>/top-up/", topups.topup, name="topup"),
    path("<slug:platform_code>/top-ups/", topups.topups, name="topups"),
    path("<slug:platform_code>/top-ups/<int:topup_id>/", topups.topup_detail, name="topup_detail"),
    path(
        "<slug:platform_code>/top-ups/<int:topup_id>/proof/", topups.topup_proof, name="topup_proof"
    ),
    path(
        "<slug:platform_code>/top-ups/<int:topup_id>/proof/file/",
        topups.topup_proof_download,
        name="topup_proof_download",
    ),
]
