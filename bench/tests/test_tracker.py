"""
The load generator's id tracking (bench.loadgen.Tracker, Load.track_ids): a
gap that a live message's prev_id reveals is filled by one resume, what the
resume replays counts as recovered, and a second copy of a live message as a
duplicate.
"""

from bench.loadgen import Tracker


def live(message_id: int, prev_id: int | None) -> dict:
    return {"type": "message", "id": message_id, "prev_id": prev_id}


def replayed(message_id: int) -> dict:
    return {"type": "message", "id": message_id}


def test_a_gap_is_resumed_from_the_last_contiguous_id_once():
    tracker = Tracker(room=0, client=0)
    assert tracker.on_frame({"type": "hello", "last_id": 10}) is None
    assert tracker.on_frame(live(12, 10)) is None
    # 13 and 14 never came: 15 names 14 before it.
    assert tracker.on_frame(live(15, 14)) == 12
    # Another gap while the resume runs asks for nothing more yet...
    assert tracker.on_frame(live(17, 16)) is None
    for message_id in (13, 14, 15):
        assert tracker.on_frame(replayed(message_id)) is None
    # ...and one more resume once the first is done.
    done = {"type": "resume_done", "last_id": 15, "count": 3, "has_more": False}
    assert tracker.on_frame(done) == 15
    tracker.on_frame(replayed(16))
    tracker.on_frame(replayed(17))
    tracker.on_frame({"type": "resume_done", "last_id": 17, "has_more": False})
    record = tracker.record()
    assert record["live"] == [12, 15, 17]
    assert record["resumed"] == [13, 14, 16]
    # 15 and 17 came live and again in a replay.
    assert (record["gaps"], record["resumes"], record["redundant"]) == (2, 2, 2)
    assert record["joined_after"] == 10
    assert not tracker.resuming


def test_no_gap_no_resume_and_a_second_live_copy_is_a_duplicate():
    tracker = Tracker(room=0, client=0)
    tracker.on_frame({"type": "hello", "last_id": None})
    for message_id, prev in ((1, None), (2, 1), (5, 2), (5, 2)):
        assert tracker.on_frame(live(message_id, prev)) is None
    tracker.on_frame({"type": "error", "code": "rate_limited"})
    record = tracker.record()
    assert record["live"] == [1, 2, 5]
    assert (record["duplicated"], record["gaps"], record["resumes"]) == (1, 0, 0)
    assert record["errors"] == {"rate_limited": 1}
