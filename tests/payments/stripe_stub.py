"""A local stand-in for the part of Stripe's API that payments.gateways.stripe_gateway uses.

The real `stripe` library talks HTTP to it (STRIPE_API_BASE points here), so the
gateway's requests, form encoding, error handling, retries and idempotency keys
are exercised for real; only Stripe's servers are replaced. It keeps
PaymentIntents, Checkout Sessions, Customers, PaymentMethods, Charges and
Refunds in memory, answers in Stripe's JSON shapes, replays the first response
to a repeated Idempotency-Key, and can be told to fail: a 500, or a timeout
before or after doing the work.

What happens outside our API calls (a customer paying on the Checkout page, a
capture in Stripe's dashboard) is done with the helper methods; ``event()``
builds a webhook event from an object's current state and ``sign()`` signs a
payload with Stripe's scheme: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "t.payload">``.

Endpoints: POST/GET /v1/payment_intents[/<id>[/capture|/cancel]], GET
/v1/payment_intents/search, POST /v1/refunds, POST/GET
/v1/checkout/sessions[/<id>[/expire]]; and a tiny hosted Checkout page at
/checkout/<session id> for trying the flow in a browser. Run it alone with
``python -m tests.payments.stripe_stub --port 12111``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import hashlib
import hmac
import html
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

TEST_SECRET_KEY = "sk_test_stub_0123456789"
TEST_WEBHOOK_SECRET = "whsec_test_stub_0123456789"

# What a card does, by the name a test gives it (modelled on Stripe's test cards).
SUCCESS = "success"
DECLINE = "card_declined"
INSUFFICIENT_FUNDS = "insufficient_funds"
# Both pass on the Checkout page (the customer authenticates there), then, saved:
AUTHENTICATION_REQUIRED = "authentication_required"  # 4000 0027 6000 3184: always asks
DECLINE_AFTER_SAVE = "decline_after_save"  # 4000 0000 0000 0341: later charges are declined

DECLINES = {
    DECLINE: ("card_declined", "generic_decline", "Your card was declined."),
    INSUFFICIENT_FUNDS: (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    AUTHENTICATION_REQUIRED: (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
    DECLINE_AFTER_SAVE: ("card_declined", "generic_decline", "Your card was declined."),
}
BRAND_NETWORKS = {
    "visa": "visa",
    "mastercard": "mastercard",
    "amex": "american_express",
    "discover": "discover_global_network",
}


class StubError(Exception):
    def __init__(self, status: int, type_: str, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "code": code, "message": message, **extra}}


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str
    replayed: bool = False


@dataclass
class Failure:
    mode: str  # "500", "timeout" (nothing done) or "timeout_after" (done, answer lost)
    times: int | None  # None: until cleared
    path: str  # only requests whose path contains this


@dataclass
class StripeStub:
    secret_key: str = TEST_SECRET_KEY
    hang_seconds: float = 3.0
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    intents: dict[str, dict] = field(default_factory=dict)
    sessions: dict[str, dict] = field(default_factory=dict)
    customers: dict[str, dict] = field(default_factory=dict)
    methods: dict[str, dict] = field(default_factory=dict)
    charges: dict[str, dict] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    behaviours: dict[str, str] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    _answers: dict[str, tuple[str, int, dict]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _release: threading.Event = field(default_factory=threading.Event)
    _clock: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, port: int = 0) -> StripeStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub._handle(self, "get")

            def do_POST(self) -> None:
                stub._handle(self, "post")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.failures.clear()
            for mapping in (
                self.intents,
                self.sessions,
                self.customers,
                self.methods,
                self.charges,
                self.refunds,
                self.behaviours,
                self._answers,
            ):
                mapping.clear()

    # --- switches and what tests read ------------------------------------------------------

    def fail(self, mode: str, *, times: int | None = 1, path: str = "") -> None:
        """Make the next ``times`` requests to ``path`` fail: "500", "timeout", "timeout_after"."""
        assert mode in ("500", "timeout", "timeout_after")
        self.failures.append(Failure(mode, times, path))

    def recover(self) -> None:
        self.failures.clear()

    def posts(self, path_contains: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == "post" and path_contains in r.path]

    # --- the world outside our API calls ---------------------------------------------------

    def saved_card(
        self, behaviour: str = SUCCESS, *, brand: str = "visa", last4: str = "4242"
    ) -> tuple[str, str]:
        """A customer with a card saved earlier: (customer id, payment method id)."""
        customer = self._customer()
        method = self._method(behaviour, brand, last4, customer=customer["id"])
        return customer["id"], method["id"]

    def pay_checkout(
        self,
        session_id: str,
        behaviour: str = SUCCESS,
        *,
        brand: str = "visa",
        last4: str = "4242",
    ) -> dict:
        """The customer pays on the Checkout page. Returns the PaymentIntent.

        A decline leaves the Session open (the customer can try another card) and its
        PaymentIntent in requires_payment_method, as Stripe does.
        """
        with self._lock:
            session = self.sessions[session_id]
            assert session["status"] == "open", f"session is {session['status']}"
            blocked = (
                session.get("_payment_method_options", {})
                .get("card", {})
                .get("restrictions", {})
                .get("brands_blocked", [])
            )
            if BRAND_NETWORKS.get(brand) in blocked:
                raise StubError(402, "card_error", "card_declined", "This card is not accepted.")
            intent = self.intents.get(session["payment_intent"] or "")
            if intent is None:
                data = session["_payment_intent_data"]
                customer = session["customer"]
                if customer is None and session["customer_creation"] == "always":
                    customer = self._customer()["id"]
                    session["customer"] = customer
                intent = self._new_intent(
                    amount=session["amount_total"],
                    currency=session["currency"],
                    capture_method=data.get("capture_method", "automatic"),
                    metadata=data.get("metadata", {}),
                    customer=customer,
                    setup_future_usage=data.get("setup_future_usage"),
                    description=data.get("description"),
                )
                session["payment_intent"] = intent["id"]
            method = self._method(behaviour, brand, last4)
            try:
                self._confirm(intent, method, mode="checkout")
            except StubError:
                return copy.deepcopy(intent)
            session["status"] = "complete"
            if intent["status"] == "succeeded":
                session["payment_status"] = "paid"
            return copy.deepcopy(intent)

    def expire_checkout(self, session_id: str) -> None:
        with self._lock:
            self._expire_session(self.sessions[session_id])

    def capture_in_dashboard(self, intent_id: str, amount: int | None = None) -> dict:
        with self._lock:
            return copy.deepcopy(self._capture(self.intents[intent_id], amount))

    def refund_in_dashboard(self, intent_id: str, amount: int | None = None) -> dict:
        with self._lock:
            return copy.deepcopy(self._refund(self.intents[intent_id], amount))

    def event(self, type_: str, object_id: str) -> dict:
        """A webhook event carrying a snapshot of the object as it is now."""
        with self._lock:
            store = {"pi": self.intents, "cs": self.sessions, "ch": self.charges}[
                object_id.split("_")[0]
            ]
            snapshot = self._public(store[object_id])
        return {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": "2025-09-30.clover",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
            "data": {"object": snapshot},
        }

    @staticmethod
    def sign(payload: str, secret: str = TEST_WEBHOOK_SECRET, timestamp: int | None = None) -> str:
        """The Stripe-Signature header for ``payload``."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
        return f"t={timestamp},v1={mac.hexdigest()}"

    # --- HTTP --------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        if parts.path.startswith("/checkout/"):
            self._hosted_page(request, method, parts.path.removeprefix("/checkout/"))
            return
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode() if method == "post" else parts.query
        params = decode_form(raw)
        key = request.headers.get("Idempotency-Key", "")
        record = Recorded(method, parts.path, params, key)
        with self._lock:
            self.requests.append(record)
            failure = self._take_failure(parts.path)
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            self._send(request, 401, _error("invalid_request_error", "", "Invalid API Key."))
            return
        if failure is not None and failure.mode == "500":
            self._send(request, 500, _error("api_error", "", "An unknown error occurred."))
            return
        if failure is not None and failure.mode == "timeout":
            self._release.wait(self.hang_seconds)
            return  # the connection closes without an answer
        status, body = self._answer(method, parts.path, params, key, record)
        if failure is not None and failure.mode == "timeout_after":
            self._release.wait(self.hang_seconds)
            return
        self._send(request, status, body, replayed=record.replayed)

    def _take_failure(self, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.path in path:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                return failure
        return None

    def _answer(
        self, method: str, path: str, params: dict, key: str, record: Recorded
    ) -> tuple[int, dict]:
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self._lock:
            if method == "post" and key in self._answers:
                earlier, status, body = self._answers[key]
                if earlier != fingerprint:
                    return 400, _error(
                        "idempotency_error",
                        "idempotency_key_in_use",
                        "Keys for idempotent requests can only be used with the same parameters.",
                    )
                record.replayed = True
                return status, body
            try:
                status, body = 200, self._route(method, path, params)
            except StubError as error:
                status, body = error.status, error.body
            if method == "post" and key:
                self._answers[key] = (fingerprint, status, body)
            return status, body

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, body: dict, *, replayed: bool = False
    ) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
        if replayed:
            request.send_header("Idempotent-Replayed", "true")
        request.end_headers()
        request.wfile.write(data)

    def _route(self, method: str, path: str, params: dict) -> dict:
        expand = params.pop("expand", [])
        if method == "post" and path == "/v1/payment_intents":
            return self._public(self._create_intent(params), expand)
        if method == "get" and path == "/v1/payment_intents/search":
            return self._search(params, expand)
        if method == "post" and path == "/v1/refunds":
            return self._public(self._create_refund(params))
        if method == "post" and path == "/v1/checkout/sessions":
            return self._public(self._create_session(params), expand)
        match = re.fullmatch(r"/v1/(payment_intents|checkout/sessions)/(\w+)(?:/(\w+))?", path)
        if match is None:
            raise StubError(404, "invalid_request_error", "", f"Unrecognized request URL {path}")
        kind, object_id, action = match.groups()
        store = self.intents if kind == "payment_intents" else self.sessions
        obj = store.get(object_id)
        if obj is None:
            raise StubError(
                404, "invalid_request_error", "resource_missing", f"No such object: '{object_id}'"
            )
        if method == "get" and action is None:
            return self._public(obj, expand)
        if method == "post" and kind == "payment_intents" and action == "capture":
            amount = params.get("amount_to_capture")
            return self._public(self._capture(obj, int(amount) if amount else None), expand)
        if method == "post" and kind == "payment_intents" and action == "cancel":
            return self._public(self._cancel(obj), expand)
        if method == "post" and kind == "checkout/sessions" and action == "expire":
            if obj["status"] != "open":
                raise StubError(
                    400,
                    "invalid_request_error",
                    "checkout_session_unexpected_state",
                    f"This Checkout Session is {obj['status']}.",
                )
            self._expire_session(obj)
            return self._public(obj, expand)
        raise StubError(404, "invalid_request_error", "", f"Unrecognized request URL {path}")

    # --- objects -----------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}"

    def _customer(self) -> dict:
        customer = {"id": self._id("cus"), "object": "customer", "created": int(time.time())}
        self.customers[customer["id"]] = customer
        return customer

    def _method(self, behaviour: str, brand: str, last4: str, customer: str | None = None) -> dict:
        method = {
            "id": self._id("pm"),
            "object": "payment_method",
            "type": "card",
            "customer": customer,
            "card": {
                "brand": brand,
                "last4": last4,
                "exp_month": 12,
                "exp_year": time.gmtime().tm_year + 3,
                "funding": "credit",
                "country": "US",
            },
        }
        self.methods[method["id"]] = method
        self.behaviours[method["id"]] = behaviour
        return method

    def _new_intent(self, **fields: Any) -> dict:
        intent = {
            "id": self._id("pi"),
            "object": "payment_intent",
            "amount_capturable": 0,
            "amount_received": 0,
            "status": "requires_payment_method",
            "payment_method": None,
            "latest_charge": None,
            "last_payment_error": None,
            "next_action": None,
            "cancellation_reason": None,
            "payment_method_types": ["card"],
            "livemode": False,
            "created": int(time.time()) * 1000 + next(self._clock),
            **fields,
        }
        intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(8)}"
        self.intents[intent["id"]] = intent
        return intent

    def _create_intent(self, params: dict) -> dict:
        for required in ("amount", "currency"):
            if required not in params:
                raise StubError(
                    400, "invalid_request_error", "parameter_missing", f"Missing {required}"
                )
        intent = self._new_intent(
            amount=int(params["amount"]),
            currency=params["currency"],
            capture_method=params.get("capture_method", "automatic"),
            metadata=params.get("metadata", {}),
            customer=params.get("customer"),
            setup_future_usage=params.get("setup_future_usage"),
            description=params.get("description"),
        )
        if params.get("confirm") == "true":
            method = self.methods.get(params.get("payment_method", ""))
            if method is None:
                raise StubError(
                    400, "invalid_request_error", "resource_missing", "No such PaymentMethod"
                )
            off_session = params.get("off_session") == "true"
            if off_session and (not intent["customer"] or method["customer"] != intent["customer"]):
                raise StubError(
                    400,
                    "invalid_request_error",
                    "payment_method_not_attached",
                    "The PaymentMethod is not attached to this customer.",
                )
            self._confirm(intent, method, mode="off_session" if off_session else "on_session")
        return intent

    def _confirm(self, intent: dict, method: dict, *, mode: str) -> None:
        """Charge ``method``; ``mode``: "checkout" (the customer is on Stripe's page and
        authenticates there), "on_session" (API, customer present) or "off_session"."""
        intent["payment_method"] = method["id"]
        behaviour = self.behaviours[method["id"]]
        if mode == "checkout" and behaviour in (AUTHENTICATION_REQUIRED, DECLINE_AFTER_SAVE):
            behaviour = SUCCESS
        if behaviour == AUTHENTICATION_REQUIRED and mode == "on_session":
            intent["status"] = "requires_action"
            intent["next_action"] = {
                "type": "redirect_to_url",
                "redirect_to_url": {"url": f"{self.url}/3ds/{intent['id']}", "return_url": None},
            }
            return
        if behaviour in DECLINES:
            code, decline_code, message = DECLINES[behaviour]
            charge = self._charge(intent, method, status="failed")
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
                "charge": charge["id"],
                "payment_method": self._public(method),
            }
            raise StubError(
                402,
                "card_error",
                code,
                message,
                decline_code=decline_code,
                charge=charge["id"],
                payment_intent=self._public(intent),
                payment_method=self._public(method),
            )
        self._charge(intent, method, status="succeeded")
        intent["last_payment_error"] = None
        if intent["setup_future_usage"] and intent["customer"]:
            method["customer"] = intent["customer"]
        intent["status"] = "requires_capture"
        intent["amount_capturable"] = intent["amount"]
        if intent["capture_method"] != "manual":
            self._capture(intent, None)

    def _charge(self, intent: dict, method: dict, *, status: str) -> dict:
        charge = {
            "id": self._id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "captured": False,
            "refunded": False,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "payment_method": method["id"],
            "payment_method_details": {"type": "card", "card": dict(method["card"])},
            "status": status,
            "metadata": {},
        }
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        return charge

    def _capture(self, intent: dict, amount: int | None) -> dict:
        if intent["status"] != "requires_capture":
            raise StubError(
                400,
                "invalid_request_error",
                "payment_intent_unexpected_state",
                f"This PaymentIntent could not be captured because it has a status of "
                f"{intent['status']}.",
            )
        amount = intent["amount"] if amount is None else amount
        if amount > intent["amount"]:
            raise StubError(
                400,
                "invalid_request_error",
                "amount_too_large",
                "The amount to capture is greater than the amount capturable.",
            )
        charge = self.charges[intent["latest_charge"]]
        charge.update(amount_captured=amount, captured=True)
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return intent

    def _cancel(self, intent: dict) -> dict:
        if intent["status"] in ("succeeded", "canceled"):
            raise StubError(
                400,
                "invalid_request_error",
                "payment_intent_unexpected_state",
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}.",
            )
        intent.update(status="canceled", amount_capturable=0, cancellation_reason="requested")
        return intent

    def _create_refund(self, params: dict) -> dict:
        intent = self.intents.get(params.get("payment_intent", ""))
        if intent is None:
            raise StubError(400, "invalid_request_error", "resource_missing", "No such intent")
        amount = params.get("amount")
        return self._refund(intent, int(amount) if amount else None, params.get("metadata", {}))

    def _refund(self, intent: dict, amount: int | None, metadata: dict | None = None) -> dict:
        if intent["status"] != "succeeded":
            raise StubError(
                400,
                "invalid_request_error",
                "charge_not_refundable",
                "This PaymentIntent has no successful charge to refund.",
            )
        charge = self.charges[intent["latest_charge"]]
        left = charge["amount_captured"] - charge["amount_refunded"]
        amount = left if amount is None else amount
        if amount <= 0 or amount > left:
            raise StubError(
                400,
                "invalid_request_error",
                "amount_too_large",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        refund = {
            "id": self._id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "currency": intent["currency"],
            "status": "succeeded",
            "metadata": metadata or {},
        }
        self.refunds[refund["id"]] = refund
        return refund

    def _create_session(self, params: dict) -> dict:
        items = params.get("line_items", [])
        amount = sum(
            int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1)) for item in items
        )
        session_id = f"cs_test_{secrets.token_hex(16)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": items[0]["price_data"]["currency"] if items else None,
            "payment_intent": None,
            "customer": params.get("customer"),
            "customer_creation": params.get("customer_creation"),
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "expires_at": int(params.get("expires_at") or time.time() + 86400),
            "locale": params.get("locale"),
            "url": f"{self.url}/checkout/{session_id}",
            "livemode": False,
            "_payment_intent_data": params.get("payment_intent_data", {}),
            "_payment_method_options": params.get("payment_method_options", {}),
        }
        self.sessions[session_id] = session
        return session

    def _expire_session(self, session: dict) -> None:
        session.update(status="expired", url=None)
        intent = self.intents.get(session["payment_intent"] or "")
        if intent is not None and intent["status"] not in ("succeeded", "requires_capture"):
            intent.update(status="canceled", cancellation_reason="abandoned")

    def _search(self, params: dict, expand: list[str]) -> dict:
        match = re.fullmatch(r"metadata\['(\w+)'\]:'([^']*)'", params.get("query", ""))
        if match is None:
            raise StubError(400, "invalid_request_error", "", "The stub knows one query form.")
        name, value = match.groups()
        found = [i for i in self.intents.values() if i["metadata"].get(name) == value]
        inner = [e.removeprefix("data.") for e in expand if e.startswith("data.")]
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": False,
            "data": [self._public(intent, inner) for intent in found],
        }

    def _public(self, obj: dict, expand: list[str] | None = None) -> dict:
        """The object as the API shows it, with the ``expand`` paths filled in."""
        shown = {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}
        for path in expand or []:
            head, _, rest = path.partition(".")
            value = shown.get(head)
            if isinstance(value, str):
                store = {"pi": self.intents, "pm": self.methods, "ch": self.charges}
                target = store.get(value.split("_")[0], {}).get(value)
                if target is not None:
                    shown[head] = self._public(target, [rest] if rest else [])
            elif isinstance(value, dict) and rest:
                target_id = value["id"]
                for store in (self.intents, self.methods, self.charges):
                    if target_id in store:
                        merged = self._public(store[target_id], [rest])
                        shown[head] = {**value, rest.split(".")[0]: merged[rest.split(".")[0]]}
        return shown

    # --- a hosted Checkout page for trying the flow by hand ------------------------------

    def _hosted_page(self, request: BaseHTTPRequestHandler, method: str, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            request.send_error(404)
            return
        if method == "post":
            length = int(request.headers.get("Content-Length") or 0)
            choice = dict(parse_qsl(request.rfile.read(length).decode())).get("card", SUCCESS)
            if choice == "cancel":
                target = session["cancel_url"]
            else:
                with contextlib.suppress(StubError, AssertionError):
                    self.pay_checkout(session_id, choice)
                target = (
                    session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
                    if session["status"] == "complete"
                    else f"/checkout/{session_id}"
                )
            request.send_response(303)
            request.send_header("Location", target)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        amount = f"{session['amount_total'] / 100:.2f} {str(session['currency']).upper()}"
        buttons = "".join(
            f'<button name="card" value="{value}">{label}</button> '
            for value, label in (
                (SUCCESS, "Pay with 4242 (success)"),
                (DECLINE, "Pay with 0002 (declined)"),
                ("cancel", "Back to the shop"),
            )
        )
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<title>Stripe Checkout (stub)</title></head>"
            "<body style='font-family:sans-serif;max-width:30rem;margin:3rem auto'>"
            f"<h1>Stripe Checkout (local stub)</h1><p>Amount: {html.escape(amount)}</p>"
            f"<p>Status: {html.escape(session['status'])}</p>"
            f"<form method=post>{buttons}</form></body></html>"
        ).encode()
        request.send_response(200)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(page)))
        request.end_headers()
        request.wfile.write(page)


def _error(type_: str, code: str, message: str) -> dict:
    return {"error": {"type": type_, "code": code or None, "message": message}}


def decode_form(raw: str) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=1``) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


# --- pytest --------------------------------------------------------------------------------


_server: StripeStub | None = None


def _running_stub() -> StripeStub:
    """One stub for the whole test run, started on first use (its thread is a daemon)."""
    global _server
    if _server is None:
        _server = StripeStub().start()
        atexit.register(_server.stop)
    return _server


@pytest.fixture(name="stripe_stub")
def stripe_stub_fixture(settings) -> StripeStub:  # type: ignore[no-untyped-def]
    """The stub, emptied, with the settings pointing the gateway at it."""
    stub = _running_stub()
    stub.reset()
    settings.STRIPE_API_BASE = stub.url
    settings.STRIPE_SECRET_KEY = TEST_SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = TEST_WEBHOOK_SECRET
    # One retry with the same key (production makes two) and a short timeout, so that
    # the failure tests take about a second.
    settings.STRIPE_TIMEOUT_SECONDS = 0.5
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    stub.hang_seconds = 1.0
    return stub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=12111)
    port = parser.parse_args().port
    stub = StripeStub().start(port)
    print(f"Stripe stub at {stub.url} (key {TEST_SECRET_KEY}); Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
