"""Proofs of payment for bank transfer top-ups: PDF, JPEG or PNG recognised by content,
at most 5 MB, stored outside any public URL and served only to those who may see money."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from djmoney.money import Money
from PIL import Image

from credit.exceptions import TopUpError
from credit.models import TopUp
from credit.services import ledger
from credit.services import topups as topup_services
from tests.factories import PlatformFactory, RegistrationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def platform(db):
    return PlatformFactory(code="es", currency="EUR", iban="ES9121000418450200051332")


@pytest.fixture
def customer(platform):
    return RegistrationFactory(platform=platform).account


@pytest.fixture
def topup(platform, customer) -> TopUp:
    return start_transfer(customer, platform)


def start_transfer(account, platform, amount: str = "100.00") -> TopUp:
    return topup_services.topup_transfer_start(
        wallet=ledger.wallet_for(account=account, platform=platform),
        amount=Money(amount, platform.currency),
        terms_accepted=True,
        created_by=None,
    )


@pytest.fixture
def signed_in(client, customer, member_of):
    def sign_in(role: str = "owner"):
        client.force_login(member_of(customer, role).user)
        return client

    return sign_in


def urls(topup: TopUp) -> dict[str, str]:
    kwargs = {"platform_code": topup.wallet.platform.code, "topup_id": topup.pk}
    return {
        name: reverse(f"credit:{name}", kwargs=kwargs)
        for name in ("topup_detail", "topup_proof", "topup_proof_download")
    }


# --- Real and fake files ------------------------------------------------------------------


def pdf_bytes() -> bytes:
    """A real one-page PDF, as a bank's confirmation would be."""
    from weasyprint import HTML

    return HTML(string="<h1>Payment confirmation</h1><p>EUR 100.00</p>").write_pdf()


def image_bytes(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format=kind)
    return buffer.getvalue()


REAL = {
    "pdf": (pdf_bytes, "application/pdf"),
    "png": (lambda: image_bytes("PNG"), "image/png"),
    "jpg": (lambda: image_bytes("JPEG"), "image/jpeg"),
}


def upload(client, topup: TopUp, name: str, content: bytes, content_type: str):
    return client.post(
        urls(topup)["topup_proof"],
        {"proof": SimpleUploadedFile(name, content, content_type=content_type)},
    )


def stored_files(media: Path) -> list[Path]:
    return [path for path in media.rglob("*") if path.is_file()] if media.exists() else []


# --- Uploading ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pdf", "png", "jpg"])
def test_a_real_pdf_png_or_jpeg_is_stored_for_review(signed_in, topup, media, kind):
    make, content_type = REAL[kind]
    content = make()
    client = signed_in("billing")

    response = upload(client, topup, f"confirmation.{kind}", content, content_type)

    assert response.status_code == 302
    assert response["Location"] == urls(topup)["topup_detail"]
    topup.refresh_from_db()
    assert topup.proof_status == TopUp.Proof.SUBMITTED
    assert topup.proof.name.startswith(f"proofs/{topup.wallet.account_id}/")
    assert topup.proof.name.endswith(f".{kind}")
    [stored] = stored_files(media)
    assert stored.read_bytes() == content
    page = client.get(urls(topup)["topup_detail"]).content.decode()
    assert "We have your proof of payment" in page


def test_the_type_comes_from_the_content_not_the_name_or_browser(signed_in, topup):
    png = image_bytes("PNG")

    upload(signed_in(), topup, "scan.txt", png, "text/plain")

    topup.refresh_from_db()
    assert topup.proof.name.endswith(".png")
    assert topup.proof_status == TopUp.Proof.SUBMITTED


@pytest.mark.parametrize(
    ("name", "content", "content_type", "message"),
    [
        (
            "confirmation.pdf",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 400,
            "application/pdf",
            "This file is not a PDF, JPEG or PNG.",
        ),
        (
            "confirmation.png",
            b"Payment of 100 EUR sent on Monday, trust me.\n",
            "image/png",
            "This file is not a PDF, JPEG or PNG.",
        ),
        (
            "confirmation.png",
            b"\x89PNG\r\n\x1a\n" + b"not really an image" * 10,
            "image/png",
            "This image is damaged or incomplete",
        ),
        (
            "confirmation.pdf",
            b"%PDF-1.7\n" + b"0" * (5 * 1024 * 1024),
            "application/pdf",
            "The file is too large (5.0 MB); the limit is 5 MB.",
        ),
        ("empty.pdf", b"", "application/pdf", "The file is empty."),
    ],
    ids=["renamed-exe", "text", "fake-png", "over-5-mb", "empty"],
)
def test_a_file_that_is_not_an_acceptable_proof_is_refused_and_not_stored(
    signed_in, topup, media, name, content, content_type, message
):
    response = upload(signed_in(), topup, name, content, content_type)

    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_proof_error"' in html
    assert message in html
    topup.refresh_from_db()
    assert not topup.proof
    assert topup.proof_status == TopUp.Proof.NONE
    assert stored_files(media) == []


def test_exactly_five_megabytes_is_accepted(signed_in, topup):
    content = b"%PDF-1.7\n" + b"0" * (5 * 1024 * 1024 - 9)

    response = upload(signed_in(), topup, "big.pdf", content, "application/pdf")

    assert response.status_code == 302


def test_a_new_proof_replaces_one_not_yet_reviewed(signed_in, topup):
    client = signed_in()
    upload(client, topup, "first.png", image_bytes("PNG"), "image/png")
    upload(client, topup, "second.jpg", image_bytes("JPEG"), "image/jpeg")

    topup.refresh_from_db()
    assert topup.proof.name.endswith(".jpg")


def test_no_proof_on_a_card_top_up_or_a_credited_transfer(platform, customer, committed_approve):
    wallet = ledger.wallet_for(account=customer, platform=platform)
    card = topup_services.topup_card_start(
        wallet=wallet, amount=Money("50", "EUR"), terms_accepted=True, created_by=None
    )
    credited = committed_approve(start_transfer(customer, platform))
    user = UserFactory()

    for refused in (card, credited):
        with pytest.raises(TopUpError):
            topup_services.topup_proof_submit(
                topup_id=refused.pk,
                file=SimpleUploadedFile("p.png", image_bytes("PNG"), "image/png"),
                submitted_by=user,
            )
        refused.refresh_from_db()
        assert not refused.proof


@pytest.fixture
def committed_approve(django_capture_on_commit_callbacks):
    def approve(topup: TopUp) -> TopUp:
        with django_capture_on_commit_callbacks(execute=True):
            topup_services.topup_transfer_approve(
                topup_id=topup.pk, staff=UserFactory(is_staff=True)
            )
        topup.refresh_from_db()
        assert topup.state == TopUp.State.PAID
        return topup

    return approve


def test_members_who_cannot_move_money_cannot_upload(signed_in, topup, media):
    response = upload(signed_in("accountant"), topup, "p.png", image_bytes("PNG"), "image/png")

    assert response.status_code == 403
    assert stored_files(media) == []


# --- Downloading --------------------------------------------------------------------------


@pytest.fixture
def with_proof(topup) -> tuple[TopUp, bytes]:
    content = image_bytes("PNG")
    topup_services.topup_proof_submit(
        topup_id=topup.pk,
        file=SimpleUploadedFile("bank.png", content, "image/png"),
        submitted_by=UserFactory(),
    )
    topup.refresh_from_db()
    return topup, content


@pytest.mark.parametrize("role", ["owner", "billing", "accountant"])
def test_members_who_see_money_download_the_proof(signed_in, with_proof, role):
    topup, content = with_proof

    response = signed_in(role).get(urls(topup)["topup_proof_download"])

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_technical_member_cannot_download_the_proof(signed_in, with_proof):
    topup, _content = with_proof

    assert signed_in("technical").get(urls(topup)["topup_proof_download"]).status_code == 403


def test_another_account_cannot_download_the_proof(client, platform, member_of, with_proof):
    topup, _content = with_proof
    neighbour = RegistrationFactory(platform=platform).account
    client.force_login(member_of(neighbour).user)

    assert client.get(urls(topup)["topup_proof_download"]).status_code == 404


def test_a_visitor_is_sent_to_sign_in(client, with_proof):
    topup, _content = with_proof

    response = client.get(urls(topup)["topup_proof_download"])

    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_the_proof_has_no_public_media_url(client, with_proof, member_of):
    topup, _content = with_proof
    client.force_login(member_of(topup.wallet.account).user)

    assert client.get(f"/media/{topup.proof.name}").status_code == 404


def test_staff_download_the_proof_from_the_admin(staff_client, with_proof):
    from django.contrib.auth.models import Permission

    topup, content = with_proof
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_topup"))
    client = staff_client(viewer)
    proof_url = reverse("admin:credit_topup_proof", args=[topup.pk])

    page = client.get(reverse("admin:credit_topup_change", args=[topup.pk])).content.decode()
    response = client.get(proof_url)

    assert proof_url in page
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content


def test_staff_without_the_view_permission_cannot_download(staff_client, with_proof):
    topup, _content = with_proof
    client = staff_client(UserFactory(is_staff=True))

    response = client.get(reverse("admin:credit_topup_proof", args=[topup.pk]))

    assert response.status_code == 403
