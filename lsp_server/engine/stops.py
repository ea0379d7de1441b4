"""Stop strings: hold back text that may begin one, cut exactly where one appears."""

from __future__ import annotations


class StopMatcher:
    """Hold back text that may begin a stop string; report when one appears."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add generated text; return what is safe to emit and whether a stop matched."""
        if not self.stops:
            return text, False
        self.buffer += text
        first = -1
        for s in self.stops:
            i = self.buffer.find(s)
            if i >= 0 and (first < 0 or i < first):
                first = i
        if first >= 0:
            out = self.buffer[:first]
            self.buffer = ""
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.buffer)), 0, -1):
                if self.buffer.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        cut = len(self.buffer) - hold
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self) -> str:
        """Return held-back text at the end of generation."""
        out, self.buffer = self.buffer, ""
        return out
