"""`manage.py demo_data`, which `make run` calls every time, is idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import Account, Membership, Platform, User
from billing_site.demo import CUSTOMER_LOGIN, STAFF_LOGIN

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Platform, Account, Membership, User))


def test_demo_data_twice_creates_everything_once_and_prints_the_logins():
    first = StringIO()
    call_command("demo_data", stdout=first)
    after_first = counts()
    call_command("demo_data", stdout=StringIO())

    assert counts() == after_first
    assert after_first[0] >= 1
    assert after_first[1] >= 1
    output = first.getvalue()
    assert STAFF_LOGIN.email in output
    assert STAFF_LOGIN.password in output
    assert CUSTOMER_LOGIN.email in output
    assert CUSTOMER_LOGIN.password in output


def test_printed_demo_logins_work(client):
    call_command("demo_data", stdout=StringIO())

    assert client.login(username=STAFF_LOGIN.email, password=STAFF_LOGIN.password)
    assert client.get("/admin/").status_code == 200
    client.logout()
    assert client.login(username=CUSTOMER_LOGIN.email, password=CUSTOMER_LOGIN.password)
    assert "Acme Web s.r.o." in client.get("/").content.decode()


def test_demo_data_restores_a_changed_demo_password(client):
    call_command("demo_data", stdout=StringIO())
    customer = User.objects.get(email=CUSTOMER_LOGIN.email)
    customer.set_password("something-else-entirely")
    customer.save()

    call_command("demo_data", stdout=StringIO())

    assert client.login(username=CUSTOMER_LOGIN.email, password=CUSTOMER_LOGIN.password)
