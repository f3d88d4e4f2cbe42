"""Typing stub for the compiled kernels (xentc/_kernels.pyx)."""
from typing import Any, Dict, FrozenSet, Optional, Tuple

import numpy as np

SERIAL_WORK: int
BINARY_LABEL_DTYPES: Dict[np.dtype, int]
STRIDED_BINARY_LABELS: bool
SAMPLE_WEIGHT_PATTERNS: bool
BINARY_SAMPLE_WEIGHT_DTYPES: FrozenSet[str]
BLOCK_WORK: int
LABELS_CHECKED_IN_KERNEL: bool

KernelResult = Tuple[float, int, int, int]  # (sum, error code, first bad row/index, class or value)

def openmp_info() -> Tuple[int, int]: ...
def kernel_variant() -> str: ...
def weight_sum(labels: Optional[np.ndarray], sw: Optional[np.ndarray], cw: Optional[np.ndarray], C: int,
               ignore_index: int, has_ignore: bool, n: int, double_: bool,
               n_threads: Optional[int], sw_rep: int = ..., sw_len: int = ...) -> KernelResult: ...
def binary(y: np.ndarray, x: np.ndarray, sw: Optional[np.ndarray], w1: Optional[np.ndarray], w0: float,
           eps: float, gamma: float, dscale: float, from_logits: bool, loss: Optional[np.ndarray],
           grad: Optional[np.ndarray], hess: Optional[np.ndarray], double_: bool,
           n_threads: Optional[int], sw_rep: int = ..., sw_len: int = ..., sw_off: int = ...) -> KernelResult: ...
def softmax(x: np.ndarray, labels: Optional[np.ndarray], ysoft: Optional[np.ndarray], sw: Optional[np.ndarray],
            cwa: Optional[np.ndarray], ignore_index: int, has_ignore: bool, eps: float, gamma: float,
            dscale: float, from_logits: bool, loss: Optional[np.ndarray], grad: Optional[np.ndarray],
            hess: Optional[np.ndarray], double_: bool, n_threads: Optional[int]) -> KernelResult: ...
def store16(src: np.ndarray, dst: np.ndarray, bfloat: bool, n_threads: Optional[int]) -> None: ...
def load16(src: np.ndarray, dst: np.ndarray, bfloat: bool, n_threads: Optional[int]) -> None: ...
def narrow(src: np.ndarray, dst: np.ndarray, top: float, n_threads: Optional[int]) -> int: ...
