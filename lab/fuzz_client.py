"""
The fuzzer's end of the socket (test_fuzz.py): sends one frame at a time to a
live Daphne, reads until the answer the oracle (fuzz_frames.expected) calls
for, counts what came back, and reopens the socket after a close.

A mismatch is recorded, not raised, so one run reports every kind of wrong
answer; the test asserts there are none.
"""

import json
from collections import Counter
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from .fuzz_oracle import Expect, Frame

# Seconds to wait for one answer: far above a loopback round trip, so that a
# frame with no answer is told apart from a slow one.
ANSWER_TIMEOUT = 10
# Frames that arrive on their own schedule, whatever was sent.
UNSOLICITED = {"presence", "presence_change", "typing"}
ABNORMAL_CLOSURE = 1006  # no close frame: the TCP connection was dropped
# Probes resume after ids this high: no message is replayed.
PROBE_AFTER = 10**18


@dataclass
class Observed:
    kind: str  # error, message, resume_done, close, timeout, other
    code: object = None  # error code or close code
    frame: dict | None = None


@dataclass
class Tally:
    frames: int = 0
    families: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    closes: Counter = field(default_factory=Counter)
    closes_by_family: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    sockets_opened: int = 0
    probes: int = 0
    mismatches: list = field(default_factory=list)
    mismatch_count: int = 0


class FrameSender:
    """One socket at a time to one room, reopened after every close."""

    MAX_SHOWN = 20  # mismatches kept in full for the failure message

    def __init__(self, url: str, *, origin: str, cookie: str, username: str):
        self.url, self.origin, self.cookie = url, origin, cookie
        self.username = username
        self.socket: ClientConnection | None = None
        self.tally = Tally()

    def open(self) -> ClientConnection:
        """A new socket, past its hello frame."""
        self.close()
        try:
            self.socket = ws_connect(
                self.url,
                origin=self.origin,
                additional_headers={"Cookie": self.cookie},
                # The exact bytes go on the wire: no compression, no size cap.
                compression=None,
                max_size=None,
                open_timeout=ANSWER_TIMEOUT,
                close_timeout=1,
                legacy=True,  # a connection that outlives this call, closed by close()
            )
        except (OSError, InvalidHandshake) as exc:
            raise AssertionError(f"could not reopen the socket: {exc!r}") from exc
        self.tally.sockets_opened += 1
        hello = self._next_frame(expect_resume=False)
        assert hello.frame and hello.frame.get("type") == "hello", hello
        return self.socket

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def exchange(self, frame: Frame, expect: Expect) -> None:
        tally = self.tally
        tally.frames += 1
        tally.families[frame.family] += 1
        socket = self.socket or self.open()
        try:
            if frame.binary:
                socket.send(frame.data)
            elif isinstance(frame.data, bytes):
                socket.send(frame.data, text=True)  # maybe not UTF-8: on purpose
            else:
                socket.send(frame.data)
        except ConnectionClosed as closed:
            observed = self._closed(closed)
        else:
            if expect.kind == "none":
                observed = self._probe()
            else:
                observed = self._next_frame(expect_resume=expect.kind == "resume_done")
        self._count(observed)
        if observed.kind == "close":
            tally.closes_by_family[frame.family] += 1
        if not _matches(observed, expect, self.username):
            tally.mismatch_count += 1
            if len(tally.mismatches) < self.MAX_SHOWN:
                tally.mismatches.append(
                    {"frame": frame, "expected": expect, "observed": observed}
                )

    def _probe(self) -> Observed:
        """After a frame that needs no answer (typing), a resume whose
        resume_done, told apart by its "after", proves that nothing else came
        back: the answers of the frames that follow stay in step."""
        self.tally.probes += 1
        marker = PROBE_AFTER + self.tally.probes
        try:
            self.socket.send(json.dumps({"type": "resume", "after": marker}))
        except ConnectionClosed as closed:
            return self._closed(closed)
        extra = None
        for _ in range(5):  # the probe's answer, after at most a few stray ones
            observed = self._next_frame(expect_resume=False)
            if observed.kind == "resume_done" and observed.frame["after"] == marker:
                return extra or Observed("none")
            if observed.kind in {"close", "timeout"}:
                return observed
            extra = extra or observed
        return extra

    def _next_frame(self, *, expect_resume: bool) -> Observed:
        while True:
            try:
                text = self.socket.recv(timeout=ANSWER_TIMEOUT)
            except TimeoutError:
                return Observed("timeout")
            except ConnectionClosed as closed:
                return self._closed(closed)
            frame = json.loads(text)
            kind = frame.get("type")
            if kind in UNSOLICITED:
                continue
            if kind == "message" and expect_resume:
                continue  # replayed before resume_done
            if kind in {"error", "message", "resume_done", "hello"}:
                return Observed(kind, frame.get("code"), frame)
            return Observed("other", frame=frame)

    def _closed(self, closed: ConnectionClosed) -> Observed:
        self.socket = None
        code = closed.rcvd.code if closed.rcvd is not None else ABNORMAL_CLOSURE
        return Observed("close", code)

    def _count(self, observed: Observed) -> None:
        self.tally.answers[observed.kind] += 1
        if observed.kind == "error":
            self.tally.errors[observed.code] += 1
        elif observed.kind == "close":
            self.tally.closes[observed.code] += 1


def _matches(observed: Observed, expect: Expect, username: str) -> bool:
    if expect.or_invalid_json and (observed.kind, observed.code) == (
        "error",
        "invalid_json",
    ):
        return True
    if observed.kind != expect.kind:
        return False
    if expect.kind in {"error", "close"} and observed.code not in expect.codes:
        return False
    if expect.kind == "error":
        # docs/protocol.md: client_id is echoed when the message frame carried a
        # usable one, and only then.
        return observed.frame.get("client_id") == expect.client_id
    if expect.kind == "message":
        return (
            observed.frame.get("client_id") == expect.client_id
            and observed.frame.get("author") == username
        )
    return True
