"""Top-ups in the portal: choosing an amount, paying by card or bank transfer, the
transfer instructions with a payment QR code, and proofs of payment.

A wallet is found by its platform's code for ``request.account`` (404 when the account
is not registered there); a top-up is looked up within that wallet, so another
account's top-up is a 404. Seeing top-ups needs VIEW_MONEY; starting one or adding a
proof needs MOVE_MONEY.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from accounts.models import Platform
from accounts.permissions import Capability, role_can
from accounts.portal import member_required
from credit import qr
from credit.exceptions import TopUpError
from credit.forms_topups import ProofForm, TopUpForm
from credit.models import TopUp, Wallet
from credit.services import ledger
from credit.services import topups as services
from payments.exceptions import PaymentError
from payments.models import PENDING_STATES

TOPUPS_PER_PAGE = 25


def _wallet(request: HttpRequest, platform_code: str) -> Wallet:
    """The account's wallet on the platform, created on the first visit."""
    platform = Platform.objects.filter(
        code=platform_code, registrations__account=request.account
    ).first()
    if platform is None:
        raise Http404("The account is not registered on this platform")
    wallet = ledger.wallet_for(account=request.account, platform=platform)
    wallet.platform = platform
    return wallet


def _topup(request: HttpRequest, platform_code: str, topup_id: int) -> TopUp:
    topup = (
        TopUp.objects.select_related("wallet__platform", "wallet__account", "payment")
        .filter(
            pk=topup_id,
            wallet__account=request.account,
            wallet__platform__code=platform_code,
        )
        .first()
    )
    if topup is None:
        raise Http404("No such top-up in this account")
    return topup


def _can(request: HttpRequest, capability: Capability) -> bool:
    return role_can(request.membership.role, capability)


# --- Starting a top-up --------------------------------------------------------------------


@never_cache
@member_required(Capability.MOVE_MONEY)
def topup(request: HttpRequest, platform_code: str) -> HttpResponse:
    wallet = _wallet(request, platform_code)
    platform = wallet.platform
    form = TopUpForm(request.POST or None, platform=platform)
    if request.method == "POST" and form.is_valid():
        start = (
            services.topup_card_start
            if form.cleaned_data["method"] == TopUp.Method.CARD
            else services.topup_transfer_start
        )
        try:
            started = start(
                wallet=wallet,
                amount=form.cleaned_data["topup_amount"],
                terms_accepted=form.cleaned_data["terms"],
                created_by=request.user,
            )
        except TopUpError as error:
            field = error.extra.get("field")
            form.add_error(field if field in form.fields else None, error.message)
        except PaymentError as error:
            form.add_error(None, error.message)
        else:
            if started.method == TopUp.Method.CARD:
                return redirect("payments:pay", transaction_id=started.payment.public_id)
            messages.success(
                request,
                _("Your top-up of %(amount)s is waiting for your bank transfer.")
                % {"amount": started.amount_money},
            )
            return redirect("credit:topup_detail", platform_code=platform.code, topup_id=started.pk)
    return render(
        request,
        "credit/topups/topup.html",
        {"wallet": wallet, "platform": platform, "form": form},
    )


# --- Seeing top-ups -----------------------------------------------------------------------


@member_required(Capability.VIEW_MONEY)
def topups(request: HttpRequest, platform_code: str) -> HttpResponse:
    wallet = _wallet(request, platform_code)
    page = Paginator(
        TopUp.objects.filter(wallet=wallet).order_by("-created_at", "-id"), TOPUPS_PER_PAGE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "credit/topups/topups.html",
        {
            "wallet": wallet,
            "platform": wallet.platform,
            "page": page,
            "can_top_up": _can(request, Capability.MOVE_MONEY),
        },
    )


@dataclass(frozen=True)
class TransferInstructions:
    """What the customer types into their bank (or scans), for one pending transfer."""

    bank_name: str
    beneficiary: str
    iban: str
    bic: str
    local_account_number: str
    variable_symbol: str
    reference: str  # what to write in the payment's message (EUR and other currencies)
    amount: object  # Money
    currency: str
    qr: qr.PaymentQr | None

    @property
    def iban_grouped(self) -> str:
        """The IBAN in groups of four, as printed on bank documents (and easy to read out)."""
        compact = "".join(self.iban.split())
        return " ".join(compact[start : start + 4] for start in range(0, len(compact), 4))

    @property
    def qr_svg(self) -> str:
        # Generated by credit.qr from our own data, never from the request: safe to inline.
        return mark_safe(self.qr.svg) if self.qr else ""  # noqa: S308


def _instructions(topup: TopUp) -> TransferInstructions:
    platform = topup.wallet.platform
    account = topup.wallet.account
    currency = str(platform.currency)
    symbol = str(account.variable_symbol)
    try:
        code = qr.payment_qr(
            currency=currency,
            iban=platform.iban,
            bic=platform.bic,
            beneficiary=platform.legal_name,
            amount=topup.amount,
            variable_symbol=symbol,
            message=_("Credit top-up %(platform)s") % {"platform": platform.name},
            title=_("QR payment code for %(amount)s to %(iban)s")
            % {"amount": topup.amount_money, "iban": platform.iban},
        )
    except ValueError:
        code = None  # bank details no QR standard accepts: the details below still work
    return TransferInstructions(
        bank_name=platform.bank_name,
        beneficiary=platform.legal_name,
        iban=platform.iban,
        bic=platform.bic,
        local_account_number=platform.local_account_number if currency == "CZK" else "",
        variable_symbol=symbol,
        reference=qr.epc_remittance(symbol),
        amount=topup.amount_money,
        currency=currency,
        qr=code,
    )


def _detail(request: HttpRequest, topup: TopUp, *, proof_form: ProofForm | None = None):  # type: ignore[no-untyped-def]
    pending_transfer = topup.method == TopUp.Method.TRANSFER and topup.state == TopUp.State.PENDING
    can_move_money = _can(request, Capability.MOVE_MONEY)
    can_pay = (
        can_move_money
        and topup.method == TopUp.Method.CARD
        and topup.state == TopUp.State.PENDING
        and topup.payment is not None
        and topup.payment.state in PENDING_STATES
    )
    can_add_proof = pending_transfer and can_move_money
    return render(
        request,
        "credit/topups/topup_detail.html",
        {
            "topup": topup,
            "wallet": topup.wallet,
            "platform": topup.wallet.platform,
            "instructions": _instructions(topup) if pending_transfer else None,
            "can_pay": can_pay,
            "can_top_up": can_move_money,
            "can_add_proof": can_add_proof,
            "proof_form": proof_form or (ProofForm() if can_add_proof else None),
        },
        status=400 if proof_form is not None and proof_form.errors else 200,
    )


@never_cache
@member_required(Capability.VIEW_MONEY)
def topup_detail(request: HttpRequest, platform_code: str, topup_id: int) -> HttpResponse:
    return _detail(request, _topup(request, platform_code, topup_id))


# --- Proof of payment ---------------------------------------------------------------------


@member_required(Capability.MOVE_MONEY)
def topup_proof(request: HttpRequest, platform_code: str, topup_id: int) -> HttpResponse:
    """Upload a proof of payment (POST, from the top-up's page)."""
    found = _topup(request, platform_code, topup_id)
    if request.method != "POST":
        return redirect("credit:topup_detail", platform_code=platform_code, topup_id=found.pk)
    form = ProofForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            services.topup_proof_submit(
                topup_id=found.pk, file=form.cleaned_data["proof"], submitted_by=request.user
            )
        except TopUpError as error:
            form.add_error("proof", error.message)
        else:
            messages.success(
                request,
                _("Thank you. We will check your proof of payment and credit the top-up."),
            )
            return redirect("credit:topup_detail", platform_code=platform_code, topup_id=found.pk)
    return _detail(request, found, proof_form=form)


@never_cache
@member_required(Capability.VIEW_MONEY)
def topup_proof_download(request: HttpRequest, platform_code: str, topup_id: int) -> HttpResponse:
    """The proof, to the account's members who see money (never a public /media/ URL)."""
    return proof_response(_topup(request, platform_code, topup_id))


def proof_response(topup: TopUp) -> FileResponse:
    """The stored proof as a download (also used by the staff interface)."""
    if not topup.proof:
        raise Http404("No proof of payment")
    try:
        handle = topup.proof.open("rb")
    except FileNotFoundError as error:
        raise Http404("The proof file is missing") from error
    extension = topup.proof.name.rsplit(".", 1)[-1].lower()
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=f"proof-of-payment-{topup.pk}.{extension}",
        content_type=services.proof_content_type(topup.proof.name),
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
