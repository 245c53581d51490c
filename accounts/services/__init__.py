"""Every write to accounts, by topic: core (accounts, registrations, memberships),
signup (sign-up and e-mail verification), members (roles and invitations),
organisation (company details, shops, billing profiles, platforms), security
(two-factor devices and sessions)."""
