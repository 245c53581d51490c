"""The Python-written widgets are Django's templates' HTML, character for character."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils import translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from billing_site.forms_renderer import FastWidgetRenderer

DANGEROUS = "<b>\"Tom\" & 'Jerry'</b>"


class Everything(forms.Form):
    text = forms.CharField(required=False)
    number = forms.DecimalField(required=False)
    day = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    hidden = forms.CharField(required=False, widget=forms.HiddenInput)
    email = forms.EmailField(required=False, help_text="Help")
    secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=True))
    agree = forms.BooleanField(required=False)
    upload = forms.FileField(required=False, widget=forms.FileInput)
    kind = forms.ChoiceField(
        required=False,
        choices=[("", "Any"), ("a", DANGEROUS), (3, 3), ("d", gettext_lazy("Refund to credit"))],
    )
    grouped = forms.ChoiceField(
        required=False,
        choices=[("", "—"), ("Fruit", [("apple", "Apple"), ("pear", "Pear")]), ("x", "X")],
    )
    many = forms.MultipleChoiceField(required=False, choices=[(1, "One"), (2, "Two")])
    flagged = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={"class": "form-control", "required": True, "disabled": False, "data-n": 7}
        ),
    )


VALUES = [
    {},
    {
        "text": DANGEROUS,
        "number": "1234.5",
        "day": "2026-03-01",
        "hidden": "h&h",
        "email": "a@example.com",
        "secret": "p<w>",
        "agree": "on",
        "kind": "a",
        "grouped": "pear",
        "many": ["1", "2"],
        "flagged": "x",
    },
    {"number": "abc", "day": "2026-02-31", "kind": "nope", "email": "bad"},
]


def render_all(form: forms.Form) -> list[str]:
    return [str(form[name]) for name in form.fields]


@pytest.mark.parametrize("data", VALUES)
@pytest.mark.parametrize("language", ["en", "cs"])
def test_every_widget_is_written_as_the_template_writes_it(data, language):
    with translation.override(language):
        expected = render_all(Everything(data or None, renderer=DjangoTemplates()))
        written = render_all(Everything(data or None, renderer=FastWidgetRenderer()))
    assert written == expected


def test_values_of_every_type_and_safe_text():
    for value in (None, "", 0, 7, Decimal("1234.50"), dt.date(2026, 3, 1), mark_safe("<i>x</i>")):
        expected = forms.TextInput().render("f", value, renderer=DjangoTemplates())
        assert forms.TextInput().render("f", value, renderer=FastWidgetRenderer()) == expected
        select = forms.Select(choices=[(value, value), ("b", mark_safe("<b>b</b>"))])
        expected = select.render("s", value, renderer=DjangoTemplates())
        assert select.render("s", value, renderer=FastWidgetRenderer()) == expected


def test_the_fast_path_is_taken_for_inputs_and_selects():
    writers = FastWidgetRenderer()._writers
    assert "django/forms/widgets/select.html" in writers
    assert "django/forms/widgets/text.html" in writers
    assert "django/forms/widgets/date.html" in writers


def test_a_template_that_differs_is_left_to_django(monkeypatch):
    renderer = FastWidgetRenderer()
    real = renderer.engine.get_template

    class Other:
        def __init__(self, template):
            self.template = type("T", (), {"source": template.template.source + " "})()

    def get_template(name):
        template = real(name)
        return Other(template) if name.endswith("select.html") else template

    monkeypatch.setattr(renderer.engine, "get_template", get_template)
    assert "django/forms/widgets/select.html" not in renderer._writers
    assert "django/forms/widgets/text.html" in renderer._writers
