from django.contrib import admin

from .models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "is_private", "created_by", "created_at"]
    list_filter = ["is_private"]
    search_fields = ["title", "slug"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = ["last_message_id"]
    # Removing a member here closes their open sockets in the room at once, as
    # every change of the members does (chat.signals).
    raw_id_fields = ["created_by", "members"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "room", "author", "short_body", "created_at"]
    list_filter = ["room"]
    search_fields = ["body", "author__username"]
    list_select_related = ["room", "author"]
    raw_id_fields = ["room", "author"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        # Messages come from chat.services, which broadcasts them and keeps the
        # room's prev_id chain; one added here would be neither.
        return False

    @admin.display(description="body")
    def short_body(self, message: Message) -> str:
        return message.body[:80]
