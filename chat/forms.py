from django import forms

from .models import Room


class RoomForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["title", "slug", "is_private"]
        help_texts = {
            "slug": "Letters, numbers, hyphens and underscores; it becomes the "
            "room's address.",
        }


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150, label="Add a member")
