"""Stop strings are held back until they can be ruled out, and cut exactly."""

from __future__ import annotations

from lsp_server.engine.stops import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out = []
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    out.append(matcher.flush())
    return "".join(out), False


def test_stop_split_across_pieces() -> None:
    text, hit = feed_all(StopMatcher(["\n\n"]), ["def f():", "\n", "\n", "more"])
    assert hit and text == "def f():"


def test_partial_prefix_released_when_it_is_not_a_stop() -> None:
    matcher = StopMatcher(["</s>"])
    emitted, hit = matcher.feed("a </")
    assert not hit and emitted == "a "
    emitted, hit = matcher.feed("b>")
    assert not hit and emitted == "</b>"


def test_earliest_of_several_stops_wins() -> None:
    text, hit = feed_all(StopMatcher(["END", "x"]), ["abcxyzEND"])
    assert hit and text == "abc"


def test_no_stops_passes_through() -> None:
    assert feed_all(StopMatcher([]), ["a", "b"]) == ("ab", False)
