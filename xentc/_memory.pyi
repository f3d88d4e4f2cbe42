"""Typing stub for the recycled memory of result arrays (xentc/_memory.pyx)."""
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

class BufferCacheInfo(NamedTuple):
    limit: int
    held: int
    blocks: int

def empty(shape: Tuple[int, ...], dtype: Any) -> np.ndarray: ...
def buffer_cache(max_bytes: Optional[int] = None) -> BufferCacheInfo: ...
