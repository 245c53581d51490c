"""Form widgets written in Python, the same HTML as Django's widget templates.

Django renders every widget, and every option of a select, through a template of its
own (django/forms/widgets/input.html, select.html, select_option.html, attrs.html): a
filter form with two selects costs milliseconds a page (issue #6's history_pages
benchmark). This renderer writes the plain input and select widgets directly, character
for character as those templates do (tests/test_forms_renderer.py compares the two on
every kind of value, attribute and option), and leaves every other template to Django.

It checks the templates it replaces when first used: if the template an engine finds
for one of those names is not the one it mirrors (an app overriding it, or another
Django version), that name goes through the template as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.forms.renderers import DjangoTemplates
from django.template import Context
from django.template.base import render_value_in_context
from django.template.defaultfilters import stringformat
from django.utils.functional import cached_property
from django.utils.safestring import SafeData, mark_safe

WIDGETS = "django/forms/widgets/"
_ATTRS = (
    "{% for name, value in widget.attrs.items %}{% if value is not False %} {{ name }}"
    "{% if value is not True %}=\"{{ value|stringformat:'s' }}\"{% endif %}{% endif %}"
    "{% endfor %}"
)
_INPUT = (
    '<input type="{{ widget.type }}" name="{{ widget.name }}"{% if widget.value != None %} '
    "value=\"{{ widget.value|stringformat:'s' }}\"{% endif %}"
    '{% include "django/forms/widgets/attrs.html" %}>\n'
)
_INCLUDE_INPUT = '{% include "django/forms/widgets/input.html" %}\n'
_SELECT = (
    '<select name="{{ widget.name }}"{% include "django/forms/widgets/attrs.html" %}>'
    "{% for group_name, group_choices, group_index in widget.optgroups %}{% if group_name %}\n"
    '  <optgroup label="{{ group_name }}">{% endif %}{% for option in group_choices %}\n'
    "  {% include option.template_name with widget=option %}{% endfor %}{% if group_name %}\n"
    "  </optgroup>{% endif %}{% endfor %}\n</select>\n"
)
_OPTION = (
    "<option value=\"{{ widget.value|stringformat:'s' }}\""
    '{% include "django/forms/widgets/attrs.html" %}>{{ widget.label }}</option>\n'
)
SELECT_OPTION = WIDGETS + "select_option.html"
# Input widgets whose template only includes input.html.
_INPUT_WIDGETS = (
    "text",
    "number",
    "email",
    "url",
    "password",
    "hidden",
    "date",
    "datetime",
    "time",
    "search",
    "tel",
    "color",
    "checkbox",
    "file",
)
# The context a template renders widgets in (autoescape on, the active localisation).
_CONTEXT = Context(autoescape=True)


def _text(value: Any) -> str:
    """``{{ value }}``."""
    return render_value_in_context(value, _CONTEXT)


def _formatted(value: Any) -> str:
    """``{{ value|stringformat:'s' }}`` (the filter keeps safe text safe)."""
    text = stringformat(value, "s")
    return _text(mark_safe(text) if isinstance(value, SafeData) else text)  # noqa: S308


def _attrs(attrs: dict[str, Any]) -> str:
    parts = []
    for name, value in attrs.items():
        if value is not False:
            parts.append(" " + _text(name))
            if value is not True:
                parts.append(f'="{_formatted(value)}"')
    return "".join(parts)


def _input(widget: dict[str, Any]) -> str:
    value = widget["value"]
    html = f'<input type="{_text(widget["type"])}" name="{_text(widget["name"])}"'
    if value != None:  # noqa: E711 - the template's "!= None", whatever the value's __eq__
        html += f' value="{_formatted(value)}"'
    return f"{html}{_attrs(widget['attrs'])}>"


def _option(option: dict[str, Any]) -> str:
    return (
        f'<option value="{_formatted(option["value"])}"{_attrs(option["attrs"])}>'
        f"{_text(option['label'])}</option>\n"
    )


def _select(widget: dict[str, Any]) -> str | None:
    parts = [f'<select name="{_text(widget["name"])}"{_attrs(widget["attrs"])}>']
    for group_name, group_choices, _index in widget["optgroups"]:
        if group_name:
            parts.append(f'\n  <optgroup label="{_text(group_name)}">')
        for option in group_choices:
            if option["template_name"] != SELECT_OPTION:
                return None  # a custom option template: leave it to the template
            parts.append("\n  " + _option(option))
        if group_name:
            parts.append("\n  </optgroup>")
    parts.append("\n</select>")
    return "".join(parts)


class FastWidgetRenderer(DjangoTemplates):
    """DjangoTemplates, with input and select widgets written in Python (same HTML)."""

    @cached_property
    def _writers(self) -> dict[str, Callable[[dict[str, Any]], str | None]]:
        def source(name: str) -> str | None:
            try:
                return self.engine.get_template(WIDGETS + name).template.source
            except Exception:  # missing or broken: keep Django's way
                return None

        if (source("attrs.html"), source("select_option.html")) != (_ATTRS, _OPTION):
            return {}
        writers: dict[str, Callable[[dict[str, Any]], str | None]] = {}
        if source("input.html") == _INPUT:
            for name in _INPUT_WIDGETS:
                if source(f"{name}.html") == _INCLUDE_INPUT:
                    writers[f"{WIDGETS}{name}.html"] = _input
        if source("select.html") == _SELECT:
            writers[WIDGETS + "select.html"] = _select
        return writers

    def render(self, template_name: str, context: dict[str, Any], request: Any = None) -> str:
        write = self._writers.get(template_name)
        if write is not None:
            html = write(context["widget"])
            if html is not None:
                return html
        return super().render(template_name, context, request=request)
