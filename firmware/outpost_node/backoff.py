"""When to try the Wi-Fi and the broker again: exponential backoff with "equal jitter", the same
policy the gateway uses (``protocol/reconnect.py``): uniform in [c/2, c], c = min(cap, base * 2**n)."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


class Backoff:
    def __init__(self, base_ms: int, cap_ms: int, uniform: "Callable[[], float]") -> None:
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self._uniform = uniform  # a random number in [0, 1)
        self.attempt = 0

    def next_delay_ms(self) -> int:
        ceiling = min(self.cap_ms, self.base_ms << min(self.attempt, 20))
        self.attempt += 1
        return ceiling // 2 + int(self._uniform() * (ceiling - ceiling // 2))

    def reset(self) -> None:
        self.attempt = 0
