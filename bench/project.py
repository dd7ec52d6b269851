"""
The project as a benchmark target: a database of its own (created afresh),
users with sessions, and rooms named like the load generator's (bench-0, ...).

    python -m bench.project --users 200 --rooms 10   # prints Cookie headers, JSON

Run with the project's settings and DATABASE_URL pointing at the benchmark
database; bench/run.py does this.
"""

import argparse
import json
import os

import django


def prepare(users: int, rooms: int, messages: int = 0) -> list[str]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatroom.settings")
    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from chat import services
    from chat.models import Room

    call_command("migrate", verbosity=0)
    owner, _ = User.objects.get_or_create(username="bench-owner")
    for n in range(rooms):
        if not Room.objects.filter(slug=f"bench-{n}").exists():
            services.room_create(
                slug=f"bench-{n}", title=f"Bench {n}", created_by=owner
            )
    first = Room.objects.get(slug="bench-0")
    for n in range(messages):
        services.message_create(
            room=first, author=owner, body=f"history {n}", client_id=f"seed-{n}"
        )
    cookies = []
    for n in range(users):
        user, created = User.objects.get_or_create(username=f"bench-{n}")
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--messages", type=int, default=0, help="in bench-0")
    args = parser.parse_args()
    print(json.dumps(prepare(args.users, args.rooms, args.messages)))
