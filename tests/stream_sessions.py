"""The sessions of the WebSocket stream fuzz (``stream_fuzz.py``): what a client does, how
Hypothesis generates it, a few written out (:data:`EXPLICIT_CASES`), and what the protocol says
of it (:func:`expect`; README.md, "Streaming").

A session is a query string (``sigma``, ``seed``, other keys; valid or not), a key (the right one,
none, a wrong one), actions -- binary messages of any size (whole frames of a mel, of zeros, of
huge or subnormal values; random bytes, sizes that are not whole frames or not multiples of 4,
frames holding NaN or infinities; empty; over the WebSocket size limit), text messages (the end,
other JSON, not JSON, binary-looking text, deep nesting), pauses -- and a tail: the end, a close
from the client (any code), the TCP connection dropped without a close frame (EOF or reset), or
nothing (the client waits, then closes). A case is one session or a few concurrent ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
from hypothesis import strategies as st

BANDS, HOP, RATE = 80, 256, 22050
FRAME_BYTES = 4 * BANDS
MAX_SECONDS = 2  # the service's --max-seconds
LIMIT_FRAMES = int(MAX_SECONDS * RATE / HOP)  # what --max-seconds allows a stream
WS_MAX_BYTES = 16 * 2**20  # uvicorn's WebSocket message limit: the protocol closes 1009 over it
END = '{"type": "end"}'
ABANDONS = ("close", "eof", "reset")


# ---------------------------------------------------------------------------- sessions
@dataclass(frozen=True)
class Binary:
    """A binary message: ``frames`` frames of ``fill`` and ``extra`` bytes more (or fewer)."""

    frames: int
    extra: int = 0
    fill: str = "mel"  # mel, zeros, huge, subnormal, noise (random bytes), nan, inf, -inf
    seed: int = 0

    def payload(self) -> bytes:
        size = _size(self)
        rng = np.random.default_rng(self.seed)
        if self.fill == "noise":
            return rng.bytes(size)
        count = -(-size // 4)
        if self.fill == "zeros":
            values = np.zeros(count)
        elif self.fill == "huge":
            values = rng.choice([-3.4e38, 3e38, 1e38], count)
        elif self.fill == "subnormal":
            values = rng.choice([1e-45, -1e-42, 1e-39], count)
        else:
            values = rng.normal(-5.0, 2.0, count)
            if self.fill != "mel" and count:
                values[rng.integers(count)] = float(self.fill)
        return values.astype("<f4").tobytes()[:size]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Pause:
    seconds: float


Action = Binary | Text | Pause


@dataclass(frozen=True)
class Session:
    """What one client does; ``tail``: end, close (with ``close_code``), eof, reset or idle."""

    params: tuple[tuple[str, str], ...] = ()
    auth: str = "key"  # key, none, wrong
    actions: tuple[Action, ...] = ()
    tail: str = "end"
    close_code: int = 1000

    @property
    def query(self) -> str:
        pairs = [f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in self.params]
        return "?" + "&".join(pairs) if pairs else ""

    def describe(self) -> str:
        actions = ", ".join(_describe(action) for action in self.actions)
        return f"[{self.auth} {self.query[:60]!r} {actions} | {self.tail} {self.close_code}]"


def _describe(action: Action) -> str:
    if isinstance(action, Binary):
        return f"bin {action.frames}f{action.extra:+d} {action.fill}"
    if isinstance(action, Text):
        return f"text {action.text[:30]!r}{'...' if len(action.text) > 30 else ''}"
    return f"pause {action.seconds:.2f}"


# ---------------------------------------------------------------------------- strategies
SIGMA_TEXTS = ["", "0", "0.6", "1", "-0", "nan", "inf", "-inf", "-1", "1e30", "1e300", "1e400",
               "abc", " 0.5 ", "1_0", "0x10", "\u00bd", "\uff11"]  # fmt: skip
SEED_TEXTS = ["", "0", "1", str(2**63 - 1), str(2**63), "-1", "-0", "1.5", "1e3", " 7 ", "7_0",
              "abc", "\u0663", "9" * 5000]  # fmt: skip
TEXTS = ['{"type":"end","extra":[1,2]}', ' {"type" : "end"}\n', '{"type":"END"}', '{"type":"end"',
         '"end"', "end", "{}", "null", "[]", '{"type": null}', '{"type": ["end"]}', "NaN", "",
         '{"type":"end"}{"type":"end"}', "\x00\x01\x02\xff", '\ufeff{"type":"end"}',
         '{"type":"start"}', "9" * 5000]  # fmt: skip


def _weighted(common: st.SearchStrategy, rare: st.SearchStrategy, odds: int = 3):
    """``common`` about ``odds`` times as often as ``rare`` (one_of would draw them evenly)."""
    return st.sampled_from([common] * odds + [rare]).flatmap(lambda strategy: strategy)


def queries() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """``sigma``, ``seed`` and another key, each absent or any text (mostly valid)."""
    sigma = _weighted(st.none() | st.floats(0, 2).map(repr),
                      st.sampled_from(SIGMA_TEXTS) | st.text(max_size=6))  # fmt: skip
    seed = _weighted(st.none() | st.integers(0, 2**63 - 1).map(str),
                     st.sampled_from(SEED_TEXTS) | st.text(max_size=6))  # fmt: skip
    other = st.sampled_from(["x", "lookahead", "sigmas", ""])
    return st.tuples(sigma, seed, st.none() | st.tuples(other, st.text(max_size=6))).map(
        lambda drawn: tuple(
            pair
            for pair in (("sigma", drawn[0]), ("seed", drawn[1]), drawn[2])
            if pair is not None and pair[1] is not None
        )
    )


FRAME_COUNTS = _weighted(st.integers(1, 64) | st.integers(65, 320), st.just(0), odds=8)
SEEDS = st.integers(0, 2**32 - 1)


def frame_messages() -> st.SearchStrategy[Binary]:
    """Whole frames of finite values (a mel, zeros, huge or subnormal values), 0 to 320."""
    fills = st.sampled_from(["mel", "mel", "mel", "zeros", "huge", "subnormal"])
    return st.builds(Binary, FRAME_COUNTS, st.just(0), fills, SEEDS)


def malformed_binaries() -> st.SearchStrategy[Binary]:
    """Not whole frames (or not whole float32 values), or frames holding NaN or infinities."""
    extra = st.integers(-3, 3).filter(bool) | st.integers(1, FRAME_BYTES - 1)
    uneven = st.builds(Binary, FRAME_COUNTS, extra, st.sampled_from(["mel", "zeros"]), SEEDS)
    fills = st.sampled_from(["noise", "nan", "inf", "-inf"])
    return uneven | st.builds(Binary, FRAME_COUNTS, st.just(0), fills, SEEDS)


def json_values() -> st.SearchStrategy[object]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    )


def texts() -> st.SearchStrategy[Text]:
    nested = st.integers(10, 100_000).flatmap(
        lambda depth: st.sampled_from(["[" * depth, '{"type":' * depth, "[" * depth + "]" * depth])
    )
    return st.one_of(
        st.just(END), st.just(END), st.sampled_from(TEXTS), json_values().map(json.dumps),
        st.fixed_dictionaries({"type": json_values()}).map(json.dumps), st.text(max_size=40),
        st.text(st.characters(codec="latin-1"), max_size=40), nested,
    ).map(Text)  # fmt: skip


def actions() -> st.SearchStrategy[Action]:
    pauses = st.floats(0, 0.2).map(Pause)
    oversize = st.just(Binary(WS_MAX_BYTES // FRAME_BYTES + 1, fill="zeros"))
    valid = _weighted(frame_messages(), pauses | st.just(Text(END)), odds=6)
    return _weighted(valid, _weighted(malformed_binaries() | texts(), oversize, odds=15))


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    return Session(
        params=draw(queries()),
        auth=draw(st.sampled_from(["key"] * 14 + ["none", "wrong"])),
        actions=tuple(draw(_weighted(st.lists(actions(), min_size=1, max_size=6), st.just([])))),
        tail=draw(st.sampled_from(["end"] * 8 + ["close", "eof", "reset", "idle"])),
        close_code=draw(st.sampled_from([1000, 1001, 1002, 1003, 1008, 1011, 3000, 4000, 4999])),
    )


def cases() -> st.SearchStrategy[list[Session]]:
    """One session (mostly) or two or three concurrent ones."""
    return _weighted(
        sessions().map(lambda session: [session]), st.lists(sessions(), min_size=2, max_size=3)
    )


# ---------------------------------------------------------------------------- the oracle
@dataclass(frozen=True)
class Expected:
    """What the protocol says of a session: ``outcome`` done, error, open (no end yet),
    refused (HTTP ``code`` before the handshake) or abandoned (nothing to check)."""

    outcome: str
    code: int = 1000
    frames: int = 0
    started: bool = True
    quiet: bool = False  # a message over the limit: the WebSocket protocol's own close may end it
    sigma: float = 0.6
    seed: int | None = None


def read_query(params: dict[str, str]) -> tuple[float, int | None] | None:
    """(sigma, seed or None) as documented (sigma a finite number >= 0, seed an integer in
    [0, 2^63), either empty for the default); None when the service must refuse them."""
    sigma, seed = params.get("sigma", ""), params.get("seed", "")
    try:
        sigma_value = float(sigma) if sigma else 0.6
        seed_value = int(seed) if seed else None
    except ValueError:
        return None
    if not math.isfinite(sigma_value) or sigma_value < 0:
        return None
    if seed_value is not None and not 0 <= seed_value < 2**63:
        return None
    return sigma_value, seed_value


def is_end(text: str) -> bool:
    """The end is a JSON object whose ``type`` is ``"end"``."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(message, dict) and message.get("type") == "end"


def message_effect(action: Binary | Text, received: int) -> tuple[str, int]:
    """("frames", n), ("end", 0) or ("error", close code) of one message after ``received``."""
    if isinstance(action, Text):
        return ("end", 0) if is_end(action.text) else ("error", 1007)
    data = action.payload()
    if len(data) > WS_MAX_BYTES:  # closed by the WebSocket protocol, before the service reads it
        return "error", 1009
    if len(data) % FRAME_BYTES or not np.isfinite(np.frombuffer(data, "<f4")).all():
        return "error", 1007
    frames = len(data) // FRAME_BYTES
    return ("error", 1009) if received + frames > LIMIT_FRAMES else ("frames", frames)


def _size(action: Binary) -> int:
    return max(0, action.frames * FRAME_BYTES + action.extra)


def _oversize(action: Action) -> bool:
    return isinstance(action, Binary) and _size(action) > WS_MAX_BYTES


def expect(session: Session) -> Expected:
    if session.auth != "key":
        return Expected("refused", 403, started=False)
    if session.tail in ABANDONS:
        return Expected("abandoned")
    options = read_query(dict(session.params))
    if options is None:
        return Expected("error", 1007, started=False)
    sigma, seed = options
    frames = 0
    for index, action in enumerate(session.actions):
        if isinstance(action, Pause):
            continue
        effect, value = message_effect(action, frames)
        if effect == "error":
            quiet = _oversize(action)
            return Expected("error", value, sigma=sigma, seed=seed, quiet=quiet)
        if effect == "end":  # what follows is ignored, but a message over the limit may cut it
            quiet = any(map(_oversize, session.actions[index + 1 :]))
            return Expected("done", frames=frames, sigma=sigma, seed=seed, quiet=quiet)
        frames += value
    outcome = "done" if session.tail == "end" else "open"
    return Expected(outcome, frames=frames, sigma=sigma, seed=seed)


# ---------------------------------------------------------------------------- written out
def _one(*actions: Action, tail: str = "end", code: int = 1000, **options: object) -> Session:
    return Session(actions=actions, tail=tail, close_code=code, **options)


SEEDED = (("seed", "3"), ("sigma", "0.5"))
# Every kind of session at least once, whatever Hypothesis generates next to them.
EXPLICIT_CASES = [
    [_one(Binary(40, seed=1), Pause(0.1), Binary(30, seed=2), params=SEEDED)],
    [_one(Text(END), Binary(5), tail="idle")],  # the end first, data after it
    [_one(Binary(3), Text(END), Text(END), tail="idle")],  # two ends
    [_one(tail="idle")],  # nothing at all
    [_one(Binary(0), Binary(2, fill="huge"), Binary(2, fill="subnormal"))],
    [_one(Binary(2, extra=2))],  # not whole frames
    [_one(Binary(0, extra=3))],  # not whole float32 values
    [_one(Binary(3, fill="nan"))],
    [_one(Binary(3), Text("hello"))],
    [_one(Text("[" * 100_000))],  # too deep for json
    [_one(Binary(100), Binary(LIMIT_FRAMES - 99))],  # over --max-seconds
    [_one(Binary(WS_MAX_BYTES // FRAME_BYTES + 1, fill="zeros"))],  # over the message limit
    [_one(Binary(51), Text(END), Binary(WS_MAX_BYTES // FRAME_BYTES + 1, fill="zeros"))],
    [_one(params=(("sigma", "nan"),)), _one(params=(("seed", "-1"),))],
    [_one(auth="none"), _one(auth="wrong")],
    [_one(Binary(100), tail="close", code=4000), _one(Binary(150), Text(END), tail="eof")],
    [_one(Binary(60), Pause(0.05), tail="reset"), _one(Binary(20), Pause(0.1), tail="close")],
]
