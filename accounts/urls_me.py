"""The signed-in user's own pages: profile, two-factor authentication, sessions."""

app_name = "me"

urlpatterns: list = []
