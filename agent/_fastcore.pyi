# Stub for the optional C extension agent/_fastcore.c (see agent/fastcore.py).
from collections.abc import Callable, Iterator

from agent.capture import RawFrame
from agent.fastcore import Buffer, Refill

class Lane:
    def __init__(
        self, table: object, flow_type: type, syn_sent: str, closed_timeout: float
    ) -> None: ...
    def __call__(self, frame: bytes, ts: float, wirelen: int, /) -> bool: ...
    @property
    def cache_stats(self) -> tuple[int, int]: ...

class PcapWalker(Iterator[RawFrame]):
    def __init__(
        self,
        buf: Buffer,
        pos: int,
        big_endian: bool,
        scale: float,
        linktype: int,
        maxcap: int,
        refill: Refill,
    ) -> None: ...
    def __next__(self) -> RawFrame: ...
    def attach(self, lane: Lane, tick: Callable[[], None] | None, every: int, /) -> None: ...
    def detach(self) -> tuple[int, int]: ...
    @property
    def count(self) -> int: ...
