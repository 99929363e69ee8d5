"""The rule builder: a few condition rows under all/any, or the rules as JSON for
nested groups; name, comment, sort, order and limit around them."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from playlists.fields import FieldCatalog
from playlists.rules import MAX_LIMIT, OPERATORS, RuleError, validate

ROWS = 5


class RuleRowForm(forms.Form):
    field = forms.CharField(
        required=False,
        max_length=255,
        widget=forms.TextInput(attrs={"list": "playlist-fields"}),
    )
    op = forms.ChoiceField(choices=[(op, op) for op in OPERATORS.values()], required=False)
    value = forms.CharField(required=False, max_length=500)


RuleRowFormSet = forms.formset_factory(RuleRowForm, extra=ROWS, max_num=50)


def typed(value: str, numeric: bool):
    """A row's value as JSON would carry it: a number for numeric fields."""
    if not numeric:
        return value
    try:
        number = float(value)
    except ValueError:
        return value  # validation says the field wants a number
    return int(number) if number.is_integer() and "." not in value else number


class PlaylistForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    comment = forms.CharField(max_length=1000, required=False)
    public = forms.BooleanField(required=False, label="public in Navidrome")
    match = forms.ChoiceField(
        choices=[("all", "all of these"), ("any", "any of these")], initial="all"
    )
    sort = forms.CharField(
        max_length=1000,
        required=False,
        help_text='comma-separated fields, "-" for descending, or "random"',
    )
    order = forms.ChoiceField(
        choices=[("", "as sorted"), ("asc", "asc"), ("desc", "desc (reverses the sort)")],
        required=False,
    )
    limit = forms.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False)
    rules_json = forms.CharField(
        required=False,
        max_length=100_000,
        label="rules as JSON",
        help_text='replaces the rows when filled: {"all": [...]} or {"any": [...]}, groups '
        "nested inside",
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "style": "width: 100%"}),
    )

    def __init__(self, *args, catalog: FieldCatalog, rows_initial=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalog = catalog
        self.rows = RuleRowFormSet(
            self.data if self.is_bound else None, prefix="rows", initial=rows_initial
        )
        self.rules: dict | None = None

    def clean(self):
        cleaned = super().clean()
        text = (cleaned.get("rules_json") or "").strip()
        if text:
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise ValidationError(f"the JSON rules do not parse: {exc}") from None
            if not isinstance(data, dict):
                raise ValidationError('the JSON rules must be an object like {"all": [...]}')
        else:
            if not self.rows.is_valid():
                raise ValidationError("check the condition rows")
            conditions = []
            for row in self.rows.cleaned_data:
                name = (row.get("field") or "").strip()
                if not name:
                    continue
                f = self.catalog.get(name)
                numeric = bool(f and f.kind.numeric)
                value = typed((row.get("value") or "").strip(), numeric)
                conditions.append({row.get("op") or "is": {name: value}})
            if not conditions:
                raise ValidationError("add at least one condition, or paste the rules as JSON")
            data = {cleaned.get("match") or "all": conditions}
        for key in ("name", "comment", "sort", "order", "limit"):
            if cleaned.get(key) not in (None, ""):
                data[key] = cleaned[key]
        if cleaned.get("public") or "public" not in data:
            data["public"] = bool(cleaned.get("public"))
        try:
            self.rules = validate(data, self.catalog)
        except RuleError as exc:
            raise ValidationError(exc.errors) from None
        return cleaned


def initial_from_rules(rules: dict) -> dict:
    """Form initial data showing rules: the conditions as JSON, the rest in fields."""
    group = "all" if "all" in rules else "any"
    return {
        "name": rules.get("name", ""),
        "comment": rules.get("comment", ""),
        "public": rules.get("public", False),
        "match": group,
        "sort": rules.get("sort", ""),
        "order": rules.get("order", ""),
        "limit": rules.get("limit"),
        "rules_json": json.dumps({group: rules.get(group, [])}, indent=2),
    }
