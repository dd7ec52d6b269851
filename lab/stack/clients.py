"""
Clients of the deployed site, as a browser would be: an HTTPS session with
cookies and CSRF tokens, and a chat socket that reconnects and resumes the way
the room page does (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field

import websockets

FINAL_CLOSE_CODES = {4401, 4404}


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str
    url: str

    def json(self):
        return json.loads(self.text)


class Session:
    """Cookies, CSRF and TLS verified against the stack's own certificate."""

    def __init__(self, origin: str, ca_file: str) -> None:
        self.origin = origin
        self.ssl = ssl.create_default_context(cafile=ca_file)
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.ssl),
            urllib.request.HTTPCookieProcessor(self.cookies),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body: object = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        data = None
        all_headers = {"Referer": self.origin + path, **(headers or {})}
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        if method != "GET":
            all_headers.setdefault("X-CSRFToken", self.cookie("csrftoken") or "")
        request = urllib.request.Request(
            self.origin + path, data=data, method=method, headers=all_headers
        )
        try:
            with self.opener.open(request, timeout=20) as response:
                return Response(
                    response.status,
                    _headers(response.headers),
                    response.read().decode(),
                    response.url,
                )
        except urllib.error.HTTPError as error:
            return Response(
                error.code, _headers(error.headers), error.read().decode(), ""
            )

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, form: dict[str, str]) -> Response:
        page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, f"no CSRF token in {path} ({page.status})"
        return self.request(
            "POST", path, form={"csrfmiddlewaretoken": token.group(1), **form}
        )

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)


def _headers(message) -> dict[str, str]:
    """Every header once, repeated ones joined, so duplicates show."""
    return {name: ", ".join(message.get_all(name)) for name in set(message.keys())}


@dataclass
class ChatSocket:
    """One participant's socket, behaving like the room page: keeps every message
    once across reconnects by resuming after the newest id it has, and sends
    again, with the same client_id, what was not yet acknowledged."""

    url: str
    session: Session
    name: str = ""
    ids: list[int] = field(default_factory=list)
    bodies: dict[int, str] = field(default_factory=dict)
    duplicates: int = 0
    connects: int = 0
    disconnects: list[float] = field(default_factory=list)
    reconnected_after: list[float] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    resent: int = 0

    def __post_init__(self) -> None:
        self._socket = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._changed = asyncio.Condition()
        self._pending: dict[str, str] = {}  # client_id -> body, until echoed
        self._baseline: int | None = None  # the room's last id at the first hello

    async def start(self, timeout: float = 15) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self) -> None:
        self._closing = True
        if self._socket is not None:
            await self._socket.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def send(self, body: str) -> str:
        client_id = uuid.uuid4().hex
        self._pending[client_id] = body
        await self._connected.wait()
        with contextlib.suppress(websockets.ConnectionClosed):
            # If the socket is gone, the reconnect sends it again.
            await self._send_message(self._socket, client_id, body)
        return client_id

    @staticmethod
    async def _send_message(socket, client_id: str, body: str) -> None:
        frame = {"type": "message", "body": body, "client_id": client_id}
        await socket.send(json.dumps(frame))

    async def wait_for(self, ids: list[int], timeout: float) -> None:
        """Until this socket holds every id in `ids`."""
        wanted = set(ids)
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: wanted <= set(self.ids)), timeout
                )
            except TimeoutError:
                crashed = self._task.done() and self._task.exception()
                raise AssertionError(
                    f"{self.name} lacks ids {sorted(wanted - set(self.ids))} after "
                    f"{timeout} s (connects {self.connects}, disconnects "
                    f"{len(self.disconnects)}, errors {self.errors}, "
                    f"client crashed: {crashed!r})"
                ) from None

    async def _run(self) -> None:
        backoff = 0.2
        lost_at: float | None = None
        while not self._closing:
            try:
                async with websockets.connect(
                    self.url,
                    ssl=self.session.ssl,
                    origin=self.session.origin,
                    additional_headers={"Cookie": self.session.cookie_header()},
                    open_timeout=10,
                ) as socket:
                    self._socket = socket
                    await self._serve(socket, lost_at)
                    backoff, lost_at = 0.2, None
            except websockets.ConnectionClosed as closed:
                self.close_codes.append(closed.rcvd.code if closed.rcvd else None)
                if closed.rcvd and closed.rcvd.code in FINAL_CLOSE_CODES:
                    raise
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                pass
            self._connected.clear()
            if self._closing:
                return
            if lost_at is None:
                lost_at = time.monotonic()
                self.disconnects.append(lost_at)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _serve(self, socket, lost_at: float | None) -> None:
        async for raw in socket:
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "hello":
                self.connects += 1
                if lost_at is not None:
                    self.reconnected_after.append(time.monotonic() - lost_at)
                if self._baseline is None:
                    # Like the page: history up to here is already on screen.
                    self._baseline = frame["last_id"] or 0
                after = max(self.ids, default=self._baseline)
                await socket.send(json.dumps({"type": "resume", "after": after}))
                for client_id, body in list(self._pending.items()):
                    self.resent += lost_at is not None
                    await self._send_message(socket, client_id, body)
                self._connected.set()
            elif kind == "message":
                await self._keep(frame)
            elif kind == "error":
                self.errors.append(frame)
        # A normal close (1000, 1001) ends the loop quietly: report it as well.
        state = socket.protocol
        raise websockets.ConnectionClosed(
            state.close_rcvd, state.close_sent, state.close_rcvd_then_sent
        )

    async def _keep(self, frame: dict) -> None:
        async with self._changed:
            self._pending.pop(frame.get("client_id"), None)
            if frame["id"] in self.bodies:
                self.duplicates += 1
                return
            self.ids.append(frame["id"])
            self.bodies[frame["id"]] = frame["body"]
            self._changed.notify_all()
