from django import forms

from .models import Room


class RoomForm(forms.ModelForm):
    """The lobby's form. Whether the slug is taken is for chat.services to say:
    a private room's slug is not the one asked for (room_create)."""

    class Meta:
        model = Room
        fields = ["title", "slug", "is_private"]
        help_texts = {
            "slug": "Letters, numbers, hyphens and underscores; it becomes the "
            "room's address.",
        }

    def validate_unique(self) -> None:
        pass


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150, label="Add a member")
