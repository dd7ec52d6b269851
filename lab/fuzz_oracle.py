"""
The fuzzer's oracle (test_fuzz.py): the answer docs/protocol.md promises for a
frame, written from the documentation rather than from chat/protocol.py, so
that the server and the oracle can disagree.

It decodes JSON with Python's json module, as the documentation's "not JSON"
means for a Python server: NaN, Infinity and lone surrogate escapes are JSON
here, integers of more than 4,300 digits are not.
"""

import json
from dataclasses import dataclass, replace

KNOWN_TYPES = ("message", "presence", "resume", "typing")
# docs/protocol.md: a roster page starts after a user name (Django's, at most
# 150 characters).
USERNAME_MAX_LENGTH = 150
# A client_id the fuzzing user already gave a message in another room.
REUSED_CLIENT_ID = "used-in-another-room"
# docs/protocol.md: client_id is a string of 1-64 characters.
CLIENT_ID_MAX_LENGTH = 64
# Nesting where Python's recursion limit (1,000) may stop json.loads in one
# process and not in the other: both answers are accepted between these depths.
SURE_DEPTH, UNSURE_DEPTH = 400, 1_500


@dataclass(frozen=True)
class Limits:
    """The sizes the deployed server is configured with."""

    max_message_bytes: int  # Daphne's --websocket-max-message-size
    max_frame_chars: int  # CHAT_MAX_FRAME_LENGTH
    max_body: int  # CHAT_MESSAGE_MAX_LENGTH


@dataclass(frozen=True)
class Frame:
    """One WebSocket message as sent: text (str), raw bytes in a text frame,
    bytes in a binary frame, or a tuple of text fragments."""

    family: str
    data: str | bytes | tuple[str, ...]
    binary: bool = False

    def wire(self) -> bytes:
        if isinstance(self.data, tuple):
            return "".join(self.data).encode()
        return self.data if isinstance(self.data, bytes) else self.data.encode()


@dataclass(frozen=True)
class Expect:
    """What must come back: "error" (one of `codes`, echoing `client_id`),
    "message" (the broadcast carrying `client_id`), "resume_done", "close" (one
    of `codes`), or "none" (typing: a notice at most, rate limited; a roster
    page, which arrives as a presence frame).
    `or_invalid_json`: nesting so deep that invalid_json is right too."""

    kind: str
    codes: frozenset = frozenset()
    client_id: str | None = None
    or_invalid_json: bool = False


def _error(*codes: str, client_id: str | None = None) -> Expect:
    return Expect("error", frozenset(codes), client_id)


def expected(frame: Frame, limits: Limits) -> Expect:
    wire = frame.wire()
    if len(wire) > limits.max_message_bytes:
        # Daphne fails the connection (1009); autobahn drops TCP, so 1006.
        return Expect("close", frozenset({1009, 1006}))
    if frame.binary:
        return _error("binary_not_supported")
    try:
        text = wire.decode()
    except UnicodeDecodeError:
        # RFC 6455: invalid UTF-8 in a text frame fails the connection (1007).
        return Expect("close", frozenset({1007, 1006}))
    if len(text) > limits.max_frame_chars:
        return _error("frame_too_large")
    depth = nesting_depth(text)
    if depth > UNSURE_DEPTH:
        return _error("invalid_json")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return _error("invalid_json")
    answer = _expected_for(data, limits)
    if depth > SURE_DEPTH:
        return replace(answer, or_invalid_json=True)
    return answer


def _expected_for(data: object, limits: Limits) -> Expect:
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return _error("invalid_frame")
    frame_type = data["type"]
    if frame_type not in KNOWN_TYPES:
        return _error("unknown_type")
    if frame_type == "typing":
        return Expect("none")
    if frame_type == "presence":
        after = data.get("after")
        if after is None or (
            isinstance(after, str)
            and 0 < len(after) <= USERNAME_MAX_LENGTH
            and not any(0xD800 <= ord(c) <= 0xDFFF for c in after)
        ):
            return Expect("none")
        return _error("invalid_after")
    if frame_type == "resume":
        after = data.get("after")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            return _error("invalid_after")
        return Expect("resume_done")
    return _expected_for_message(data, limits)


def _expected_for_message(data: dict, limits: Limits) -> Expect:
    body, client_id = data.get("body"), data.get("client_id")
    codes = set()
    if body is None:
        codes.add("empty_body")
    elif not isinstance(body, str):
        codes.add("invalid_body")
    elif not body.strip():
        codes.add("empty_body")
    else:
        # Either may be reported first when both apply.
        if len(body.strip()) > limits.max_body:
            codes.add("body_too_long")
        if not storable(body):
            codes.add("invalid_body")
    usable = (
        isinstance(client_id, str)
        and 0 < len(client_id) <= CLIENT_ID_MAX_LENGTH
        and storable(client_id)
    )
    if not usable:
        codes.add("invalid_client_id")
    elif client_id == REUSED_CLIENT_ID:
        codes.add("client_id_reused")
    if codes:
        return _error(*codes, client_id=client_id if usable else None)
    return Expect("message", client_id=client_id)


def storable(text: str) -> bool:
    """No NUL and no lone surrogate: "characters that cannot be stored"."""
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting outside JSON strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
