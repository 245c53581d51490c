"""What payments tells the apps above it. Sent only after the change is committed.

Receivers (credit, orders, invoicing) connect in their AppConfig.ready(); payments
never imports them. Each receiver gets ``transaction`` (re-read after commit),
``old_state`` and ``new_state``; it filters on ``transaction.purpose``.
"""

from django.dispatch import Signal

# Any state change: created → authorized, authorized → captured, → failed, ...
transaction_state_changed = Signal()
