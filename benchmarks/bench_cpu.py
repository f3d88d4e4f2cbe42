"""CPU benchmark: xentc against NumPy, PyTorch CPU and scikit-learn (see xentc/_bench.py).

    python benchmarks/bench_cpu.py [--quick] [--dtype float32|float64|both] [--case TEXT]

The same as ``python -m xentc bench``; run it from outside the source tree's shadow or after
``pip install .`` (the source folder hands over to the installed package).
"""
import sys

from xentc._bench import main

if __name__ == "__main__":
    sys.exit(main())
