"""Local stand-ins for babelwatch's real parts: Tansu (Kafka protocol), Redis, Triton on CPU."""

from .broker import TansuBroker
from .process import ManagedProcess, StartupFailed, free_port, wait_until
from .redis_server import RedisServer
from .stack import LocalStack
from .triton import TritonServer

__all__ = [
    "LocalStack", "ManagedProcess", "RedisServer", "StartupFailed", "TansuBroker",
    "TritonServer", "free_port", "wait_until",
]
