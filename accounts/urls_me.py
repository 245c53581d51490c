"""The signed-in user's own pages: profile, two-factor authentication, sessions."""

from django.urls import path

from accounts.views import me as views

app_name = "me"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("security/", views.security_overview, name="security"),
    path("security/two-factor/setup/", views.totp_setup, name="totp_setup"),
    path("security/two-factor/disable/", views.totp_disable, name="totp_disable"),
    path("security/backup-codes/", views.backup_codes, name="backup_codes"),
    # The "key" here is the session's public reference, never its secret key (see the view).
    path("security/sessions/<str:session_key>/end/", views.session_end, name="session_end"),
    path("security/sessions/end-others/", views.sessions_end_others, name="sessions_end_others"),
]
