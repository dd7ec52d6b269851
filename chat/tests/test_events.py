"""
chat.events from sync code: the HTTP side's broadcasts go through one event
loop and one channel-layer connection per process, not a new one per post.
"""

import pytest
from channels_redis import pubsub

from chat import services

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_broadcasts_from_sync_code_reuse_one_redis_connection(room, user, monkeypatch):
    pools = []
    create_pool = pubsub.create_pool

    def counting_create_pool(host):
        pools.append(host)
        return create_pool(host)

    monkeypatch.setattr(pubsub, "create_pool", counting_create_pool)
    for number in range(10):
        services.message_create(
            room=room, author=user, body=f"post {number}", client_id=f"p{number}"
        )
    # At most the first post of this process opens one; async_to_sync opened
    # one per post (a new event loop each time, and the layer is per loop).
    assert len(pools) <= 1
