"""Credit URLs: the wallet pages (see credit/urls.py). A wallet is named by its
platform's code; the wallet is the current account's on that platform."""

from django.urls import path

from credit.views import wallet

urlpatterns = [
    path("", wallet.wallets, name="wallets"),
    path("<slug:platform_code>/", wallet.wallet, name="wallet"),
    path("<slug:platform_code>/history/", wallet.history, name="history"),
    path("<slug:platform_code>/history/export.csv", wallet.history_csv, name="history_csv"),
    path("<slug:platform_code>/accounting/", wallet.accounting, name="accounting"),
    path(
        "<slug:platform_code>/accounting/export.csv",
        wallet.accounting_csv,
        name="accounting_csv",
    ),
    path("<slug:platform_code>/settings/", wallet.wallet_settings, name="settings"),
]
