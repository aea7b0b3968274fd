import logging
import re
import unicodedata

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm

from evaluator import checkpoint, quant

from . import names, throttle

log = logging.getLogger(__name__)


def _clean_text(value: str, field: str, max_length: int) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if any(
        unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch not in "\n\t" for ch in value
    ):
        raise forms.ValidationError(f"the {field} contains control or invisible characters")
    if len(value) > max_length:
        raise forms.ValidationError(f"the {field} is longer than {max_length} characters")
    return value


NAME_PUNCTUATION = set(" ._-+()/:,'#&")
FORMULA_START = ("=", "+", "-", "@")
HTML_TAG = re.compile(r"<[A-Za-z!?/]")


def _name_problem(name: str) -> str:
    if name.startswith(FORMULA_START):
        return "the name may not start with = + - or @ (spreadsheets run such cells)"
    odd = sorted({ch for ch in name if not (ch.isalnum() or ch in NAME_PUNCTUATION)})
    if odd:
        shown = " ".join(repr(ch) for ch in odd[:5])
        return (
            f"the name may use letters, digits, spaces and . _ - + ( ) / : , ' # & only; "
            f"remove {shown}"
        )
    return ""


class SubmissionForm(forms.Form):
    url = forms.CharField(
        label="Checkpoint",
        max_length=2000,
        help_text="A Hugging Face repo (org/name, org/name@revision, or its https URL), or an "
        "https URL of a .tar.gz, .tgz, .tar or .zip archive of a Hugging Face model directory "
        "(config.json, safetensors weights, tokenizer files), or of a .gguf file (llama.cpp's "
        "format, e.g. Q4_1 or Q8_0; alone, or in an archive with its tokenizer files).",
        widget=forms.TextInput(
            attrs={
                "placeholder": "org/name or https://…/model.tar.gz",
                "autocomplete": "off",
                "size": 70,
            }
        ),
    )
    name = forms.CharField(
        label="Display name", max_length=100, widget=forms.TextInput(attrs={"size": 40})
    )
    notes = forms.CharField(
        label="Notes (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
    )

    precisions = forms.MultipleChoiceField(
        label="Precisions",
        required=False,
        choices=[
            ("fp32", "fp32 (the reference: always run)"),
            ("bf16", "bf16"),
            ("int8", "int8 weight-only, per channel"),
            ("int4", "int4: ExecuTorch's 8da4w (8-bit activations, 4-bit weights in groups of 32)"),
        ],
        widget=forms.CheckboxSelectMultiple,
        help_text="Each is evaluated on the same tasks and data and compared document by "
        "document with fp32, the reference, which always runs.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["precisions"].initial = settings.EVAL_PRECISIONS

    def clean_url(self) -> str:
        text = self.cleaned_data["url"].strip()
        try:
            self.source = checkpoint.parse_source(text)
        except checkpoint.CheckpointError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text

    def clean_precisions(self) -> list[str]:
        # Nothing ticked (or an API call without the field): the site's default ladder.
        return quant.parse_precisions(self.cleaned_data["precisions"] or settings.EVAL_PRECISIONS)

    def clean_name(self) -> str:
        name = _clean_text(self.cleaned_data["name"], "name", 100)
        if not name:
            raise forms.ValidationError("give the model a display name")
        problem = _name_problem(name)
        if problem:
            raise forms.ValidationError(problem)
        taken = names.impersonated(name)
        if taken:
            raise forms.ValidationError(
                f"the name “{name}” can be taken for the existing entry “{taken}” (they differ "
                "only in case, spacing, punctuation, accents or look-alike letters from another "
                "script): choose a name of your own"
            )
        return name

    def clean_notes(self) -> str:
        notes = _clean_text(self.cleaned_data["notes"], "notes", 2000)
        if HTML_TAG.search(notes):
            raise forms.ValidationError("notes are plain text: remove the HTML tags")
        if notes.startswith(FORMULA_START):
            raise forms.ValidationError("notes may not start with = + - or @")
        return notes


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin's sign-in, at most ADMIN_LOGIN_ATTEMPTS per client network in
    ADMIN_LOGIN_WINDOW_S. The attempt is counted before the password is checked, so a burst
    of guesses cannot slip in beside one another; a successful sign-in clears the count."""

    def clean(self):
        network = throttle.client_network(throttle.client_ip(self.request))
        key = f"admin-login:{network}"
        wait = throttle.take(key, settings.ADMIN_LOGIN_ATTEMPTS, settings.ADMIN_LOGIN_WINDOW_S)
        if wait:
            log.warning("admin sign-in refused: too many attempts from %s", network)
            raise forms.ValidationError(
                "Too many sign-in attempts from your address: try again in "
                f"{throttle.wait_label(wait)}.",
                code="throttled",
            )
        cleaned = super().clean()
        throttle.forget(key)
        return cleaned
