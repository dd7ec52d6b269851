"""
Users, a room and logged-in sessions, created through the ORM in the database
of $DATABASE_URL (with the servers' $DJANGO_SECRET_KEY, which signs sessions),
for tests whose servers run in other processes:

    python -m lab.seed <room-slug> <username>...

Prints one JSON line: {"<username>": "<Cookie header of a logged-in session>"}.
"""

import json
import os
import sys


def main(slug: str, usernames: list[str]) -> dict[str, str]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatroom.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from chat import services

    # No password: nobody logs in with one, and hashing fifty would take seconds.
    users = [get_user_model().objects.create_user(username=n) for n in usernames]
    services.room_create(slug=slug, title=slug.title(), created_by=users[0])
    cookies = {}
    name = settings.SESSION_COOKIE_NAME
    for user in users:
        client = Client()
        client.force_login(user)
        cookies[user.get_username()] = f"{name}={client.cookies[name].value}"
    return cookies


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
