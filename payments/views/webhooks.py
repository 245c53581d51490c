"""Gateway callbacks: Stripe's webhook endpoint.

Stripe signs each delivery (Stripe-Signature: t=<timestamp>,v1=<HMAC-SHA256 of
"<timestamp>.<body>"> with the endpoint's secret). A bad signature, or a
timestamp more than five minutes old (a replay), is refused with 400 before
anything is stored. When Stripe cannot be asked for the current state the answer
is 503, so that Stripe delivers the event again.
"""

from __future__ import annotations

import json
import logging

import stripe
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments.gateways import GatewayError
from payments.services.webhooks import stripe_webhook_receive

logger = logging.getLogger(__name__)

# Older signed deliveries are refused as replays (seconds).
SIGNATURE_TOLERANCE = 300

ANSWERS = {
    "processed": "processed",
    "duplicate": "already processed",
    "ignored": "ignored",
}


def _text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    payload = request.body
    try:
        stripe.Webhook.construct_event(
            payload,
            request.headers.get("Stripe-Signature", ""),
            settings.STRIPE_WEBHOOK_SECRET,
            tolerance=SIGNATURE_TOLERANCE,
        )
        event = json.loads(payload)
    except stripe.SignatureVerificationError as error:
        logger.warning("stripe webhook refused: %s", error.user_message)
        return _text("invalid signature", status=400)
    except ValueError:
        return _text("invalid payload", status=400)
    if not isinstance(event, dict) or not event.get("id"):
        return _text("invalid payload", status=400)
    try:
        outcome = stripe_webhook_receive(payload=event)
    except GatewayError as error:
        logger.warning("stripe webhook %s: Stripe unreachable: %s", event.get("id"), error)
        return _text("retry later", status=503)
    return _text(ANSWERS[outcome.result])
