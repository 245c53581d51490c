"""Portal pages of the current account: company, members, shops, billing profiles."""

app_name = "accounts"

urlpatterns: list = []
