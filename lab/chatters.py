"""
People in a chat room, for the fault tests: a WebSocket client that behaves as
the room page does (chat/static/chat/connection.js, room.js, docs/protocol.md)
and an HTTP client of the JSON API. Both count everything that happens to them,
so a test can compare what each holds with what PostgreSQL stored.
"""

import asyncio
import contextlib
import json
import random
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import connect

FINAL_CLOSE_CODES = {4401, 4404}
# The page's timings (room.js, connection.js).
ECHO_TIMEOUT = 10.0
RECONNECT_BACKOFF_CAP = 10.0
RETRY_BACKOFF_CAP = 30.0


def backoff(attempt: int, cap: float) -> float:
    """The page's: exponential from 0.5 s, capped, with equal jitter."""
    base = min(cap, 0.5 * 2**attempt)
    return base / 2 + random.random() * base / 2


@dataclass
class Pending:
    body: str
    sent_at: float | None = None  # on the current socket; None: waits for one
    retry_at: float | None = None  # after an "unavailable" error
    unavailable: int = 0  # "unavailable" answers so far
    transmissions: int = 0


class ChatClient:
    """One person's socket. Keeps every message once across reconnects: resumes
    after the last contiguous id on each open and whenever a live message's
    prev_id reveals a gap, and sends again, with the same client_id, what was
    not echoed (after a reconnect, an "unavailable" error or ECHO_TIMEOUT)."""

    def __init__(self, name: str, url: str, cookie: str, origin: str):
        self.name, self.url, self.cookie, self.origin = name, url, cookie, origin
        self.held: dict[int, dict] = {}  # id -> frame
        self.live_at: dict[int, float] = {}  # id -> when its live frame came
        self.live_prev: dict[int, int | None] = {}  # id -> prev_id of its live frame
        self.sent: dict[str, str] = {}  # every client_id sent -> body
        self.sent_at: dict[str, float] = {}  # client_id -> when first sent
        self.transmissions: list[tuple[float, str]] = []  # when, client_id
        self.answered_at: dict[str, float] = {}  # client_id -> first echo or error
        self.pending: dict[str, Pending] = {}
        self.errors: list[tuple[float, str, str | None]] = []  # when, code, client_id
        self.close_codes: list[int | None] = []
        self.connect_failures: Counter[str] = Counter()
        self.reconnect_times: list[float] = []
        self.disconnected_at: float | None = None
        self.connects = 0
        self.gaps = 0
        self.resends = 0
        self.replay_out_of_order = 0
        self.final_close: int | None = None
        self.crash: str | None = None
        self.reading = asyncio.Event()
        self.reading.set()
        self._socket = None
        self._last_contiguous: int | None = None
        self._next_after: dict[int, int] = {}
        self._resuming = self._resume_again = False
        self._replay_last = 0
        self._resume_retry_at: float | None = None
        self._attempt = 0
        self._closing = False
        self._tasks: list[asyncio.Task] = []

    # --- driving it ----------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run()),
            asyncio.create_task(self._tick()),
        ]

    async def stop(self) -> None:
        self._closing = True
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._socket.close(), 5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def connected(self) -> bool:
        return self._socket is not None

    async def send(self, body: str) -> str:
        client_id = uuid.uuid4().hex
        self.sent[client_id] = body
        self.sent_at[client_id] = time.monotonic()
        self.pending[client_id] = Pending(body)
        await self._transmit(client_id)
        return client_id

    def holds(self, ids) -> bool:
        return set(ids) <= self.held.keys()

    def live_since(self, moment: float) -> bool:
        """A live broadcast reached this client after `moment`."""
        return any(when > moment for when in self.live_at.values())

    # --- the connection ------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            try:
                async with connect(
                    self.url,
                    origin=self.origin,
                    additional_headers={"Cookie": self.cookie},
                    open_timeout=10,
                    close_timeout=2,
                ) as socket:
                    await self._serve(socket)
            except websockets.InvalidStatus as exc:
                self._lost(f"HTTP {exc.response.status_code}")
            except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                self._lost(type(exc).__name__)
            except Exception as exc:  # a bug here, or a frame off the protocol
                self.crash = repr(exc)
                raise
            self._socket = None
            for pending in self.pending.values():
                pending.sent_at = None  # goes out again on the next socket
            if self.final_close is not None or self._closing:
                return
            await asyncio.sleep(backoff(self._attempt, RECONNECT_BACKOFF_CAP))
            self._attempt += 1

    def _lost(self, failure: str | None = None) -> None:
        if failure is not None:
            self.connect_failures[failure] += 1
        if self.disconnected_at is None:
            self.disconnected_at = time.monotonic()

    async def _serve(self, socket) -> None:
        try:
            while True:
                await self.reading.wait()
                await self._on_frame(socket, json.loads(await socket.recv()))
        except websockets.ConnectionClosed:
            self._lost()
        if not self._closing:
            code = socket.close_code
            self.close_codes.append(None if code is None else int(code))
        if socket.close_code in FINAL_CLOSE_CODES:
            self.final_close = socket.close_code

    async def _on_frame(self, socket, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "hello":
            await self._on_open(socket)
        elif kind == "message":
            await self._on_message(frame)
        elif kind == "resume_done":
            await self._on_resume_done(frame)
        elif kind == "error":
            self._on_error(frame)

    async def _on_open(self, socket) -> None:
        now = time.monotonic()
        self.connects += 1
        if self.disconnected_at is not None:
            self.reconnect_times.append(now - self.disconnected_at)
            self.disconnected_at = None
        self._attempt = 0
        self._socket = socket
        self._resuming = self._resume_again = False
        await self._request_resume()
        for client_id in list(self.pending):
            await self._transmit(client_id)

    # --- receiving -----------------------------------------------------------

    async def _on_message(self, frame: dict) -> None:
        message_id = frame["id"]
        own = self.pending.pop(frame.get("client_id"), None) is not None
        if own:
            self.answered_at.setdefault(frame["client_id"], time.monotonic())
        # Replays and live frames overlap: a message already held is dropped.
        self.held.setdefault(message_id, frame)
        if "prev_id" not in frame:
            # Replayed by a resume, or the answer to a send repeated, which
            # comes alone, out of the order of a replay running meanwhile.
            if self._resuming and not own:
                if message_id <= self._replay_last:
                    self.replay_out_of_order += 1
                self._replay_last = message_id
                self._mark_contiguous(message_id)
            return
        prev = frame["prev_id"]
        self.live_at.setdefault(message_id, time.monotonic())
        self.live_prev[message_id] = prev
        if prev is not None:
            self._next_after[prev] = message_id
        last = self._last_contiguous
        if prev is None or (last is not None and prev <= last):
            self._mark_contiguous(message_id)
        elif prev not in self.held:
            self.gaps += 1
            await self._request_resume()

    def _mark_contiguous(self, message_id: int) -> None:
        last = max(self._last_contiguous or 0, message_id)
        while last in self._next_after:
            last = self._next_after[last]
        self._last_contiguous = last

    async def _request_resume(self, after: int | None = None) -> None:
        if self._socket is None:
            return  # the next open resumes anyway
        if self._resuming and after is None:
            self._resume_again = True
            return
        self._resuming = True
        after = after if after is not None else self._last_contiguous or 0
        self._replay_last = after
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._socket.send(json.dumps({"type": "resume", "after": after}))

    async def _on_resume_done(self, frame: dict) -> None:
        self._resuming = False
        self._mark_contiguous(frame["last_id"])
        if frame["has_more"]:
            await self._request_resume(frame["last_id"])
        elif self._resume_again:
            self._resume_again = False
            await self._request_resume(self._last_contiguous or 0)

    def _on_error(self, frame: dict) -> None:
        now = time.monotonic()
        client_id = frame.get("client_id")
        self.errors.append((now, frame["code"], client_id))
        if client_id in self.pending:
            self.answered_at.setdefault(client_id, now)
        pending = self.pending.get(client_id)
        if pending is not None and frame["code"] == "unavailable":
            pending.sent_at = None
            pending.retry_at = now + backoff(pending.unavailable, RETRY_BACKOFF_CAP)
            pending.unavailable += 1
        elif pending is not None and frame["code"] == "rate_limited":
            pending.sent_at = None
            pending.retry_at = now + frame.get("retry_after", 1)
        elif frame["code"] == "resume_failed":
            self._resuming = False
            self._resume_retry_at = now + backoff(1, RETRY_BACKOFF_CAP)

    # --- sending -------------------------------------------------------------

    async def _transmit(self, client_id: str) -> None:
        pending = self.pending.get(client_id)
        if pending is None or self._socket is None:
            return
        self.resends += pending.transmissions > 0
        pending.transmissions += 1
        pending.sent_at, pending.retry_at = time.monotonic(), None
        self.transmissions.append((pending.sent_at, client_id))
        frame = {"type": "message", "body": pending.body, "client_id": client_id}
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._socket.send(json.dumps(frame))

    async def _tick(self) -> None:
        """Retries that wait for a moment: "unavailable" answers, lost echoes."""
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            for client_id, pending in list(self.pending.items()):
                if (pending.retry_at is not None and now >= pending.retry_at) or (
                    pending.sent_at is not None and now - pending.sent_at > ECHO_TIMEOUT
                ):
                    await self._transmit(client_id)
            if self._resume_retry_at is not None and now >= self._resume_retry_at:
                self._resume_retry_at = None
                await self._request_resume()


class HttpClient:
    """A logged-in user of the JSON API through nginx; counts every status."""

    def __init__(self, base_url: str, cookie: str):
        self.base_url = base_url
        # Django's CSRF check compares the csrftoken cookie with the header; a
        # page would have set the cookie, any well-formed secret does the same.
        self.csrf = secrets.token_hex(16)
        self.cookie = f"{cookie}; csrftoken={self.csrf}"
        self.statuses: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()  # no HTTP answer at all

    def request(self, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        headers = {"Cookie": self.cookie, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers |= {"Content-Type": "application/json", "X-CSRFToken": self.csrf}
        request = urllib.request.Request(self.base_url + path, data, headers)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        except OSError as error:
            self.failures[type(error).__name__] += 1
            return 0, None
        self.statuses[status] += 1
        try:
            return status, json.loads(text)
        except ValueError:
            return status, None

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)
