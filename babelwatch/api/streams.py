"""Caps on open live streams (SSE): per token and per process.

A live stream holds a connection, a task and a subscriber queue for as long as the client keeps it
open, so without a cap one client (even one with a read token) could open streams until nobody else
gets one. A slot is taken when a stream is accepted and given back when its response ends (client
gone, server stopping), in the stream body's ``finally``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass
class StreamRefused(Exception):
    scope: str  # "token" | "server"
    limit: int
    open: int

    @property
    def detail(self) -> str:
        if self.scope == "token":
            return (f"too many live streams for this token: {self.open} open, limit {self.limit} "
                    "(BABELWATCH_API_MAX_STREAMS_PER_TOKEN); close one first")
        return (f"too many live streams on this server: {self.open} open, limit {self.limit} "
                "(BABELWATCH_API_MAX_STREAMS); try again later")


class StreamSlots:
    def __init__(self, per_token: int, total: int) -> None:
        self.per_token = per_token
        self.total = total
        self.by_token: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return sum(self.by_token.values())

    def acquire(self, token_name: str) -> None:
        """Take a slot or raise :class:`StreamRefused`. No await in here: check and take are atomic."""
        mine = self.by_token[token_name]
        if mine >= self.per_token:
            raise StreamRefused("token", self.per_token, mine)
        if self.open >= self.total:
            raise StreamRefused("server", self.total, self.open)
        self.by_token[token_name] += 1

    def release(self, token_name: str) -> None:
        self.by_token[token_name] -= 1
        if self.by_token[token_name] <= 0:
            del self.by_token[token_name]
