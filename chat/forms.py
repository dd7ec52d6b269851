from django import forms

from .models import Room


class RoomForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["title", "slug"]
        help_texts = {
            "slug": "Letters, numbers, hyphens and underscores; it becomes the "
            "room's address.",
        }
