from django.contrib import admin
from django.urls import include, path

from billing_site import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("healthz/live", views.liveness, name="liveness"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", views.home, name="home"),
    path("", include("accounts.urls_auth")),
    path("account/", include("accounts.urls")),
    path("me/", include("accounts.urls_me")),
    path("payments/", include("payments.urls")),
    path("credit/", include("credit.urls")),
]
