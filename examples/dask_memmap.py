"""Score a memory-mapped array larger than a Dask worker's memory limit, chunk by chunk.

    python examples/dask_memmap.py [folder] [n_samples] [worker_memory_limit]

writes float32 logits and uint8 labels as .npy files in ``folder`` (default: a temporary
folder), starts a local cluster of two worker processes with the given memory limit (default
200MB, smaller than the 300 MB of logits for the default n = 75 million) and prints the mean
binary cross entropy computed by ``xentc.dask``. Each task reads its own chunk from the files;
no worker ever holds the whole array.
"""
import pathlib
import sys
import tempfile

import numpy as np


def write_example_data(folder, n, piece=1 << 22, seed=0):
    """Logits (float32) and labels (uint8) of n samples as .npy files, written piece by piece."""
    folder = pathlib.Path(folder)
    logits = np.lib.format.open_memmap(folder / "logits.npy", mode="w+", dtype=np.float32, shape=(n,))
    labels = np.lib.format.open_memmap(folder / "labels.npy", mode="w+", dtype=np.uint8, shape=(n,))
    rng = np.random.default_rng(seed)
    for lo in range(0, n, piece):
        hi = min(n, lo + piece)
        z = rng.normal(0.0, 3.0, hi - lo).astype(np.float32)
        logits[lo:hi] = z
        labels[lo:hi] = rng.random(hi - lo) < 1 / (1 + np.exp(-z))
    logits.flush()
    labels.flush()
    del logits, labels
    return folder / "logits.npy", folder / "labels.npy"


def score(logits_path, labels_path, chunk=1 << 22):
    """The mean binary cross entropy over the files, as a lazy Dask scalar."""
    import xentc.dask

    logits = xentc.dask.from_npy(logits_path, chunks=chunk)
    labels = xentc.dask.from_npy(labels_path, chunks=chunk)
    return xentc.dask.binary_cross_entropy(labels, logits, from_logits=True)


def main(folder=None, n=75_000_000, memory_limit="200MB"):
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        logits_path, labels_path = write_example_data(folder or tmp, n)
        size = logits_path.stat().st_size / 1e6
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, memory_limit=memory_limit,
                          dashboard_address=None) as cluster, Client(cluster):
            loss = score(logits_path, labels_path).compute()
        print(f"{n} samples, {size:.0f} MB of logits, worker memory limit {memory_limit}: "
              f"mean binary cross entropy {loss!r}")
        return loss


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else None, int(args[1]) if len(args) > 1 else 75_000_000,
         args[2] if len(args) > 2 else "200MB")
