from __future__ import annotations

from typing import Any

from django import forms

from . import params as run_params
from .models import TrainingRun


def _base_train() -> Any | None:
    try:
        return run_params.base_params().train
    except run_params.ParamsError:
        return None


class TrainingRunForm(forms.Form):
    """The run's data and parameters; blank parameter fields keep params.yaml's (or the preset's) value."""

    preset = forms.ChoiceField(choices=[(k, f"{k} – {v}") for k, v in run_params.PRESETS.items()], initial="standard")
    data = forms.ChoiceField(choices=TrainingRun.Data.choices, initial=TrainingRun.Data.DEVELOPER,
                             widget=forms.RadioSelect)
    epochs = forms.IntegerField(required=False, min_value=1, max_value=int(run_params.LIMITS["epochs"][1]))
    learning_rate = forms.FloatField(required=False, min_value=1e-7, max_value=1.0)
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=int(run_params.LIMITS["batch_size"][1]))
    image_size = forms.IntegerField(required=False, min_value=32, max_value=int(run_params.LIMITS["image_size"][1]))
    architecture = forms.ChoiceField(required=False)
    members = forms.IntegerField(required=False, min_value=1, max_value=int(run_params.LIMITS["members"][1]),
                                 label="Networks in the ensemble")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from mlcore.config import ARCHITECTURES

        base = _base_train()
        self.fields["architecture"].choices = [("", "as in params.yaml")] + [(a, a) for a in ARCHITECTURES]
        for name in run_params.EXPOSED:
            if base is not None:
                self.fields[name].help_text = f"params.yaml: {getattr(base, name)}"

    def overrides(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in run_params.EXPOSED
                if self.cleaned_data.get(name) not in (None, "")}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            try:
                run_params.resolve(preset=cleaned["preset"], overrides=self.overrides())
            except run_params.ParamsError as exc:
                raise forms.ValidationError(str(exc)) from None
        return cleaned


class PromoteForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required when the gate refuses the candidate: why it should serve anyway. Recorded in the audit trail.",
    )
