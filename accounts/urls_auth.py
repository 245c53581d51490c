"""Sign-up, e-mail verification, login (with the second factor), password reset and change.

Names are global (no namespace) because Django's auth views and settings refer
to them as `login`, `logout`, `password_reset`, ...
"""

from django.contrib.auth import views as auth_views
from django.urls import path

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
