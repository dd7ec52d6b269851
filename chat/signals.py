"""
Changes that end a user's access close their open sockets at once: logging out
closes the sockets opened with that session; a saved user (a password change,
a deactivation) and a private room membership removed by any Django code path
(the service, the admin's form, members.remove or clear, from either side) have
the user's sockets recheck their access (chat.access). Changes that send no
signal (a bulk update, SQL) are found by chat.access's periodic check.
"""

from functools import partial

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from . import events
from .models import Room


@receiver(user_logged_out)
def close_sockets_of_ended_session(sender, request, user, **kwargs) -> None:
    if user is None:  # the session had no user
        return
    events.session_ended(user_id=user.pk, session_key=request.session.session_key)


@receiver(post_save, sender=get_user_model())
def recheck_sockets_of_saved_user(
    sender, instance, created, update_fields, **kwargs
) -> None:
    # Logging in saves last_login alone: that changes no one's access.
    if created or update_fields == frozenset({"last_login"}):
        return
    _recheck_after_commit({instance.pk})


@receiver(m2m_changed, sender=Room.members.through)
def recheck_sockets_of_removed_members(
    sender, instance, action, reverse, pk_set, **kwargs
) -> None:
    if action == "pre_clear" and not reverse:
        # After the clear there is no telling who the members were.
        instance._chat_cleared_members = set(
            instance.members.values_list("pk", flat=True)
        )
    elif action == "post_clear" and not reverse:
        _recheck_after_commit(instance.__dict__.pop("_chat_cleared_members", set()))
    elif action in ("post_remove", "post_clear"):
        # Forward, pk_set holds users; reverse, the instance is the user.
        _recheck_after_commit({instance.pk} if reverse else pk_set)


def _recheck_after_commit(user_ids: set[int]) -> None:
    for user_id in user_ids:
        transaction.on_commit(partial(events.user_access_changed, user_id=user_id))
