"""A Gymnasium text space that admits any Unicode string, and works in shared memory.

``gymnasium.spaces.Text`` checks every character against a fixed charset (ASCII
letters and digits by default), so real Wikipedia text ("Estádio do Maracanã",
"1817–1825") would fall outside the space. Enumerating all of Unicode as a charset
would cost hundreds of MB, so this space accepts every string within the length
bounds and samples from a modest printable charset instead.

``AsyncVectorEnv`` (``gym.make_vec(..., vectorization_mode="async")``) passes
observations through shared memory by default. Gymnasium's ``Text`` encoding there
cannot carry our text: it stores charset indexes (every other character is lost),
reserves ``max_length`` int32s per env, and decodes the buffer once, when the vector
env is built, so every later observation reads as that first decode (all ``"0"``).
``UnicodeText`` registers its own encoding: per env a slot of UTF-8 bytes behind an
8-byte length, and a read that decodes the current contents each time it is
looked at (a copy — the vector env's default — is a plain tuple of ``str``). An
observation larger than the slot is a ``ValueError`` that names the way out
(``shared_memory=False``) instead of a truncated observation.
"""

from __future__ import annotations

import multiprocessing
import string
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils.shared_memory import create_shared_memory, read_from_shared_memory, write_to_shared_memory

# What ``sample()`` draws from: printable ASCII, the characters our tag protocols
# use, and a few non-ASCII letters and punctuation so that samples exercise Unicode.
SAMPLE_CHARSET = string.printable + "äöüéèñçß–—…“”‘’€°×"

# Bytes reserved per env in an AsyncVectorEnv's shared memory, unless the space's
# ``max_length`` needs fewer (a UTF-8 character is at most 4 bytes): 1 MiB holds any
# observation our envs write (their results are capped at a few thousand characters).
DEFAULT_SHARED_MEMORY_BYTES = 1 << 20
_LENGTH_BYTES = 8  # little-endian uint64 prefix: the slot's used bytes


class UnicodeText(Text):
    """Any ``str`` of ``min_length..max_length`` characters; samples from ``SAMPLE_CHARSET``.

    ``shared_memory_bytes``: the UTF-8 bytes one env's value may take in an
    ``AsyncVectorEnv``'s shared memory (default: enough for ``max_length``, at most
    ``DEFAULT_SHARED_MEMORY_BYTES``).
    """

    def __init__(self, max_length: int, *, min_length: int = 0, shared_memory_bytes: int | None = None, seed: int | None = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)
        if shared_memory_bytes is None:
            shared_memory_bytes = min(4 * max_length, DEFAULT_SHARED_MEMORY_BYTES)
        if shared_memory_bytes < 1:
            raise ValueError(f"shared_memory_bytes must be >= 1, got {shared_memory_bytes}")
        self.shared_memory_bytes = shared_memory_bytes

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )


class SharedTexts(Sequence[str]):
    """The ``n`` strings in a shared buffer, decoded when read (the buffer changes under it).

    ``copy.deepcopy`` (what a vector env with ``copy=True`` returns) gives a tuple of ``str``.
    """

    def __init__(self, buffer: Any, n: int, slot_bytes: int) -> None:
        self._buffer, self._n, self._stride = buffer, n, _LENGTH_BYTES + slot_bytes

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._n)))
        if not -self._n <= index < self._n:
            raise IndexError(f"index {index} out of range for {self._n} envs")
        start = (index % self._n) * self._stride
        data = np.frombuffer(self._buffer.get_obj(), dtype=np.uint8)
        used = int(data[start : start + _LENGTH_BYTES].view("<u8")[0])
        return data[start + _LENGTH_BYTES : start + _LENGTH_BYTES + used].tobytes().decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(self._n))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)


@create_shared_memory.register(UnicodeText)
def _create_unicode_text_shared_memory(space: UnicodeText, n: int = 1, ctx: ModuleType | Any = multiprocessing) -> Any:
    return ctx.Array("B", n * (_LENGTH_BYTES + space.shared_memory_bytes))


@read_from_shared_memory.register(UnicodeText)
def _read_unicode_text_from_shared_memory(space: UnicodeText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(shared_memory, n, space.shared_memory_bytes)


@write_to_shared_memory.register(UnicodeText)
def _write_unicode_text_to_shared_memory(space: UnicodeText, index: int, value: str, shared_memory: Any) -> None:
    encoded = value.encode("utf-8")
    if len(encoded) > space.shared_memory_bytes:
        raise ValueError(
            f"a {len(encoded)}-byte observation does not fit the {space.shared_memory_bytes}-byte shared-memory slot of "
            f"{space!r}; pass vector_kwargs={{'shared_memory': False}} to gym.make_vec (AsyncVectorEnv(..., shared_memory=False)) "
            "or build the space with a larger shared_memory_bytes"
        )
    stride = _LENGTH_BYTES + space.shared_memory_bytes
    data = np.frombuffer(shared_memory.get_obj(), dtype=np.uint8)
    start = index * stride
    data[start : start + _LENGTH_BYTES] = np.array([len(encoded)], dtype="<u8").view(np.uint8)
    data[start + _LENGTH_BYTES : start + _LENGTH_BYTES + len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
