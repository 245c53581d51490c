"""Portal pages for accounts (company details, members, shops: issue #3)."""

app_name = "accounts"

urlpatterns: list = []
