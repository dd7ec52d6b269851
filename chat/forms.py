from django import forms

from .models import Room


class RoomForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["slug", "title"]
        help_texts = {
            "slug": "Letters, numbers, hyphens and underscores; it becomes the "
            "room's address.",
        }
