"""Forms of the Settings page: a library root's settings, and a new root."""

from __future__ import annotations

from django import forms

from library import roots
from library.models import LibraryRoot


class RootForm(forms.ModelForm):
    class Meta:
        model = LibraryRoot
        fields = ["auto_tag", "ignore_patterns"]
        widgets = {"ignore_patterns": forms.Textarea(attrs={"rows": 5, "cols": 40})}


class AddRootForm(forms.Form):
    """A folder to add as a library root, checked by library/roots.py's rule."""

    path = forms.CharField(
        max_length=4096,
        label="Folder",
        widget=forms.TextInput(attrs={"placeholder": "/music", "autocomplete": "off"}),
    )
    auto_tag = forms.BooleanField(
        required=False, initial=True, label="Auto-tag: queue its new files for tagging"
    )

    def clean_path(self) -> str:
        try:
            return str(roots.check_new_root(self.cleaned_data["path"]))
        except roots.RootRefused as exc:
            raise forms.ValidationError(str(exc)) from None
