"""
Hostile WebSocket frames for the fuzzer (test_fuzz.py), as Hypothesis
strategies: invalid JSON, wrong types, huge numbers, deep nesting, lone
surrogate escapes, invalid UTF-8, binary, unknown types, sizes around every
limit, fragments, and valid messages among them. fuzz_oracle.expected says
what each must get back.
"""

import json
import string

from hypothesis import strategies as st

from .fuzz_oracle import REUSED_CLIENT_ID, Frame, Limits

# Any character that UTF-8 can carry (st.characters() alone yields surrogates).
CHARS = st.characters(codec="utf-8")
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
SPECIAL = st.sampled_from(
    ["\x00", "\ufeff", "\u2028", "\x1c", " ", "\t", "\n", '"', "\\", "é", "€", "😀"]
)
# Strings for JSON values; lone surrogates only inside JSON, as \\ud800 escapes.
HOSTILE_TEXT = st.text(st.one_of(CHARS, SURROGATES, SPECIAL), max_size=40)
# Whole text frames that are mostly not JSON (a text frame is valid UTF-8).
GARBAGE = st.text(st.one_of(CHARS, SPECIAL), max_size=60)
SAFE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=80
)
# Raw number literals: 19-4,300 digits decode, longer ones are refused by
# Python's int conversion limit; 1e400 decodes to infinity.
HUGE_NUMBERS = st.one_of(
    st.sampled_from(["1e400", "-1e400", "1e-400", "-0", "0.0", "NaN", "-Infinity"]),
    st.builds(
        lambda sign, digits: sign + "9" * digits,
        st.sampled_from(["", "-"]),
        st.sampled_from([19, 20, 39, 300, 4299, 4300, 4301, 5000]),
    ),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2).map(str),
)


def dumps(value: object) -> str:
    # ensure_ascii: lone surrogates travel as \\ud800 escapes, since a text
    # frame itself must be valid UTF-8.
    return json.dumps(value)


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        HOSTILE_TEXT,
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(HOSTILE_TEXT, children, max_size=4)
    ),
    max_leaves=8,
).map(dumps)


@st.composite
def nested(draw) -> str:
    """Deep nesting, balanced (JSON) or not."""
    depth = draw(
        st.integers(1, 60) | st.sampled_from([999, 1000, 1001]) | st.integers(1, 8000)
    )
    opener, closer = draw(
        st.sampled_from(
            [("[", "]"), ('{"a":', "}"), ('{"type":"message","body":', "}")]
        )
    )
    inner = draw(st.sampled_from(["1", '""', "[]", "{}", "null", '"x"']))
    missing = draw(st.sampled_from([0, 0, 0, 1]))  # unbalanced sometimes
    return opener * depth + inner + closer * (depth - missing)


# A JSON value as raw text: any kind, including ones json.dumps cannot write.
HOSTILE_VALUES = st.one_of(JSON_VALUES, HUGE_NUMBERS, nested())


@st.composite
def json_object(draw, members: dict) -> str:
    """An object from {key: strategy of raw JSON text}, each key missing now and
    then, the keys in any order."""
    items = [
        f"{json.dumps(key)}:{draw(strategy)}"
        for key, strategy in members.items()
        if draw(st.integers(0, 9))  # one time in ten, leave the key out
    ]
    return "{" + ",".join(draw(st.permutations(items))) + "}"


VALID_BODIES = st.one_of(
    SAFE_TEXT.filter(str.strip),
    st.builds(
        lambda pad, body: pad + body + pad, st.sampled_from([" ", "\n\t"]), SAFE_TEXT
    ).filter(str.strip),
)
CLIENT_IDS = st.one_of(
    st.uuids().map(str),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=64),
    st.sampled_from(["retry-1", "retry-2", REUSED_CLIENT_ID]),
)


def _body_of_length(limits: Limits) -> st.SearchStrategy[str]:
    """Bodies around the body limit, in characters of 1 to 3 UTF-8 bytes."""
    return st.builds(
        lambda char, extra: json.dumps(
            char * (limits.max_body + extra), ensure_ascii=False
        ),
        st.sampled_from(["x", "é", "€"]),
        st.sampled_from([-1, 0, 1, 100]),
    )


@st.composite
def sized_text(draw, limits: Limits) -> str:
    """Text frames around CHAT_MAX_FRAME_LENGTH (characters) and Daphne's
    message size limit (bytes)."""
    unit = draw(st.sampled_from(["x", "é", "€", "😀"]))
    width = len(unit.encode())
    count = draw(
        st.sampled_from(
            [
                limits.max_frame_chars,
                limits.max_frame_chars + 1,
                limits.max_message_bytes // width,
                limits.max_message_bytes // width + 1,
                2 * limits.max_message_bytes // width,
            ]
        )
    )
    return unit * count


@st.composite
def invalid_utf8(draw) -> bytes:
    """Valid JSON with bytes spliced in that are not UTF-8."""
    text = draw(
        st.sampled_from(['{"type":"typing"}', '{"type":"message","body":"hi"}'])
    )
    bad = draw(
        st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"])
    )
    where = draw(st.integers(0, len(text)))
    return text[:where].encode() + bad + text[where:].encode()


@st.composite
def fragmented(draw, text: st.SearchStrategy[str]) -> tuple[str, ...]:
    whole = draw(text)
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), min_size=1, max_size=4)))
    bounds = [0, *cuts, len(whole)]
    return tuple(whole[a:b] for a, b in zip(bounds, bounds[1:], strict=False))


def frames(limits: Limits) -> st.SearchStrategy[Frame]:
    """Every family of hostile frame. The weights keep the frames that cost a
    reconnect (oversized, invalid UTF-8) to a few percent; they are a guide
    only, as Hypothesis favours some choices (the figures show the mix)."""
    message = json_object(
        {
            "type": st.just('"message"'),
            "body": HOSTILE_VALUES,
            "client_id": HOSTILE_VALUES,
        }
    )
    valid_message = json_object(
        {
            "type": st.just('"message"'),
            "body": VALID_BODIES.map(dumps) | _body_of_length(limits),
            "client_id": CLIENT_IDS.map(dumps),
        }
    )
    resume = json_object(
        {"type": st.just('"resume"'), "after": HOSTILE_VALUES | st.integers().map(str)}
    )
    presence = json_object(
        {
            "type": st.just('"presence"'),
            "after": HOSTILE_VALUES | HOSTILE_TEXT.map(dumps),
        }
    )
    unknown = json_object(
        {
            "type": st.sampled_from(
                ["hello", "error", "Message", "message ", "resume_done"]
            ).map(dumps)
            | HOSTILE_TEXT.map(dumps),
            "body": st.just('"hi"'),
        }
    )
    no_type = json_object({"type": HOSTILE_VALUES, "body": st.just('"hi"')})
    typing = json_object({"type": st.just('"typing"'), "extra": HOSTILE_VALUES})
    truncated = st.builds(
        lambda text, cut: text[:cut], valid_message, st.integers(0, 60)
    )
    families = [
        ("garbage", 8, GARBAGE),
        ("truncated", 6, truncated),
        ("non_object", 6, JSON_VALUES | HUGE_NUMBERS),
        ("no_string_type", 6, no_type),
        ("unknown_type", 8, unknown),
        ("message", 20, message),
        ("valid_message", 10, valid_message),
        ("resume", 10, resume),
        ("presence", 4, presence),
        ("typing", 3, typing),
        ("nested", 5, nested()),
        ("sized", 3, sized_text(limits)),
    ]
    choices = [
        st.builds(Frame, st.just(name), strategy)
        for name, weight, strategy in families
        for _ in range(weight)
    ]
    choices += [
        st.builds(Frame, st.just("binary"), st.binary(max_size=64), st.just(True))
    ] * 6
    choices += [
        st.builds(Frame, st.just("fragmented"), fragmented(valid_message | message))
    ] * 3
    choices += [st.builds(Frame, st.just("invalid_utf8"), invalid_utf8())] * 2
    return st.sampled_from(choices).flatmap(lambda strategy: strategy)
