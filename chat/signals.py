"""
Account changes that end a user's chat: logging out closes the sockets opened
with that session, and deactivating an account closes all of its sockets.
"""

from functools import partial

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import events


@receiver(user_logged_out)
def close_sockets_of_ended_session(sender, request, user, **kwargs) -> None:
    if user is None:  # the session had no user
        return
    events.session_ended(user_id=user.pk, session_key=request.session.session_key)


@receiver(post_save, sender=get_user_model())
def close_sockets_of_deactivated_user(sender, instance, created, **kwargs) -> None:
    if not created and not instance.is_active:
        transaction.on_commit(partial(events.user_deactivated, user_id=instance.pk))
