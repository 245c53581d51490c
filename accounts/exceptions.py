"""Domain errors of accounts. Views turn them into form errors or messages; the
``code`` is stable for the API."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing_site.exceptions import ApplicationError

# --- Members and invitations (accounts.services.members) --------------------


class MemberActionNotAllowed(ApplicationError):
    """The acting user is not a member, or their role cannot manage members."""

    code = "member_action_not_allowed"


class LastOwnerError(ApplicationError):
    """The account would be left without an owner."""

    code = "last_owner"


class OwnerProtectedError(ApplicationError):
    """Only an owner may change or remove an owner, or make someone an owner."""

    code = "owner_protected"


class MemberNotFound(ApplicationError):
    """The membership is gone (e.g. removed by someone else a moment ago)."""

    code = "member_not_found"


class AlreadyMemberError(ApplicationError):
    """The e-mail address already belongs to a member of the account."""

    code = "already_member"


class InvitationUnavailable(ApplicationError):
    """The invitation cannot be used; ``reason`` says why (see InvitationStatus)."""

    code = "invitation_unavailable"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, code=f"invitation_{reason}", extra={"reason": reason})
        self.reason = reason


class InvitationEmailMismatch(ApplicationError):
    """The signed-in user is not the person the invitation was sent to."""

    code = "invitation_email_mismatch"


class InvitationUserExists(ApplicationError):
    """A user with the invited address exists: they log in instead of signing up."""

    code = "invitation_user_exists"


# --- Organisation (accounts.services.organisation) --------------------------


class ShopNameTaken(ApplicationError):
    code = "shop_name_taken"


class BillingProfileLabelTaken(ApplicationError):
    code = "billing_profile_label_taken"


class BillingProfileInUse(ApplicationError):
    code = "billing_profile_in_use"


class RegistrationNotAllowed(ApplicationError):
    """The platform is not open for new customers."""

    code = "registration_not_allowed"


# --- Security (accounts.services.security) ---------------------------------


class SecurityError(ApplicationError):
    code = "security_error"


class WrongPassword(SecurityError):
    code = "wrong_password"

    def __init__(self) -> None:
        super().__init__(_("That is not your current password."))


class WrongTotpCode(SecurityError):
    code = "wrong_totp_code"

    def __init__(self) -> None:
        super().__init__(
            _(
                "That code is not right. Enter the 6-digit code your authenticator app "
                "shows now; check that the phone's clock is correct."
            )
        )


class TotpThrottled(SecurityError):
    code = "totp_throttled"

    def __init__(self, seconds: int) -> None:
        super().__init__(
            ngettext(
                "Too many wrong codes. Wait %(seconds)s second and try again.",
                "Too many wrong codes. Wait %(seconds)s seconds and try again.",
                seconds,
            )
            % {"seconds": seconds},
            extra={"seconds": seconds},
        )


class TwoFactorAlreadyEnabled(SecurityError):
    code = "two_factor_already_enabled"

    def __init__(self) -> None:
        super().__init__(_("Two-factor sign-in is already switched on."))


class TwoFactorNotEnabled(SecurityError):
    code = "two_factor_not_enabled"

    def __init__(self) -> None:
        super().__init__(_("Two-factor sign-in is not switched on."))


class TotpSetupNotStarted(SecurityError):
    code = "totp_setup_not_started"

    def __init__(self) -> None:
        super().__init__(
            _("This set-up has expired or was finished elsewhere. Start it again, please.")
        )


class SessionNotFound(SecurityError):
    code = "session_not_found"

    def __init__(self) -> None:
        super().__init__(_("That session has already ended."))
