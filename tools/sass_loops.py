"""Instructions of the loops of chosen kernel instances, from their SASS, without a GPU.

The main softmax kernels are bound by instruction issue (ncu on an H200, benchmarks/gpu_profile.sh),
so the instructions a loop executes per element are a measure of a change that can be taken
here: this builds the named instances with NVRTC (as tools/nvrtc_check.py does, the options of
xentc._cuda), disassembles them with cuobjdump, and lists each loop (a backward branch and the
instructions from its target to it) with its length and what it holds: MUFU (special-function:
ex2, rcp, ...), LDS / STS (shared memory), LDG / STG (global memory), FSETP (float compares), BRA.
A loop's length divided by the elements one trip handles (a vector of VEC per LDS.128 of a
float32 slice, say) is its cost an element. ptxas's register and spill report comes first.

    pip install nvidia-cuda-nvrtc nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm   # libnvrtc, cuobjdump (13.5 needs nvdisasm)
    python tools/sass_loops.py "xent_onchip<float, 4>" ["xent_onchip<float, 8, xentk::xhalf>" ...]
        [--arch 90] [--cuobjdump PATH] [--sass-out FILE] [--all] [--blocks]

Loops of fewer than 6 instructions are left out unless --all. With --blocks the basic blocks are
listed too (address, length, the last instruction, the commonest opcodes): kernels without loops
(xent_softmax_few, compiled for its exact C) are straight code, and the instructions a warp
executes are the sum over the blocks on its path, read off this list. The names are those of
xentc._cuda.name_expressions (python -c "import sys; sys.path.insert(0, 'tools'); import
nvrtc_check; print(nvrtc_check.source_cuda().name_expressions(True, 'base'))"). To compare two
versions, run each checkout's own copy (git worktree add): the source compiled is always that
of the tree this file lies in.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nvrtc_check  # noqa: E402

KINDS = (("MUFU", r"^MUFU"), ("LDS", r"^LDS"), ("STS", r"^STS"), ("LDG", r"^LDG"), ("STG", r"^STG"),
         ("FSETP", r"^FSETP"), ("BRA", r"^BRA"))


def find_cuobjdump(explicit: str | None) -> str:
    if explicit:
        return explicit
    found = shutil.which("cuobjdump")
    if found:
        return found
    for site in sys.path:
        for p in glob.glob(os.path.join(site, "nvidia", "cu*", "bin", "cuobjdump")):
            return p
    raise SystemExit("cuobjdump not found: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm, or --cuobjdump PATH")


def functions(sass: str, predicates: bool = False) -> dict:
    """{mangled name: [(address, instruction text without predicate)]} of a cuobjdump -sass listing
    (with predicates: the text with its guard, "@!P0 BRA ...")"""
    out = {}
    for part in re.split(r"\n\s*Function : ", sass)[1:]:
        name = part.split("\n", 1)[0].strip()
        ins = []
        for m in re.finditer(r"/\*([0-9a-f]{4,6})\*/\s+(@!?U?P\w+\s+)?([^;]*);", part):
            ins.append((int(m.group(1), 16), ((m.group(2) or "") if predicates else "") + m.group(3).strip()))
        out[name] = ins
    return out


def loops(ins: list) -> list:
    """[(start, end, instructions)] for each backward branch to an address inside the function"""
    where = {a: k for k, (a, _) in enumerate(ins)}
    found = []
    for k, (a, text) in enumerate(ins):
        m = re.match(r"BRA (?:\S+, )?(0x[0-9a-f]+)", text)
        if m:
            target = int(m.group(1), 16)
            if target <= a and target in where:
                found.append((target, a, [t for _, t in ins[where[target]:k + 1]]))
    return found


def blocks(ins: list) -> list:
    """[(address, [instruction texts])] of the basic blocks: a block starts at a branch target, after
    a branch, an exit, a call or a convergence barrier (BSYNC, WARPSYNC); ins with predicates"""
    lead = {ins[0][0]} if ins else set()
    for k, (a, text) in enumerate(ins):
        m = re.search(r"(?:BRA|CALL)\S* (?:\S+, )?(0x[0-9a-f]+)", text)
        if m:
            lead.add(int(m.group(1), 16))
        if (m or re.search(r"(^|\s)(EXIT|RET|BSYNC|WARPSYNC)", text)) and k + 1 < len(ins):
            lead.add(ins[k + 1][0])
    out = []
    for a, text in ins:
        if a in lead or not out:
            out.append((a, []))
        out[-1][1].append(text)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="+", help="kernel instances, as xentc._cuda.name_expressions spells them")
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--lib", default=None, help="libnvrtc.so (default: as nvrtc_check finds it)")
    ap.add_argument("--cuobjdump", default=None)
    ap.add_argument("--sass-out", default=None, help="also write the whole listing here")
    ap.add_argument("--all", action="store_true", help="list short loops too")
    ap.add_argument("--blocks", action="store_true", help="list the basic blocks too")
    args = ap.parse_args()

    _cuda = nvrtc_check.source_cuda()
    nv = nvrtc_check.NVRTC(nvrtc_check.find_libnvrtc(args.lib))
    cluster = args.arch >= 90
    opts = nvrtc_check.nvrtc_options(_cuda, nv, args.arch, cluster) + ["-Xptxas", "-v"]
    ok, log, cubin, lowered = nv.compile(_cuda.kernel_source(), opts, args.names)
    if not ok:
        print(log, file=sys.stderr)
        return 1
    usage, _ = nvrtc_check.split_ptxas_info(log, lowered)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        run = subprocess.run([find_cuobjdump(args.cuobjdump), "-sass", path], capture_output=True, text=True)
        if run.returncode:   # cuobjdump 13.5 without nvdisasm beside it, say
            raise SystemExit(f"cuobjdump failed: {run.stderr.strip()} (pip install nvidia-cuda-nvdisasm)")
        sass = run.stdout
    if args.sass_out:
        with open(args.sass_out, "w") as f:
            f.write(sass)
    funcs = functions(sass)
    guarded = functions(sass, predicates=True) if args.blocks else {}
    for name in args.names:
        low = lowered[name]
        print(f"{name}  ({low})")
        regs, stack, spill_st, spill_ld = usage.get(name, (0, 0, 0, 0))
        ins = funcs.get(low, [])
        print(f"    {regs} registers, stack {stack} B, spills {spill_st} B stored / {spill_ld} B loaded; "
              f"{len(ins)} instructions in all")
        for start, end, body in loops(ins):
            if len(body) < 6 and not args.all:
                continue
            counts = ", ".join(f"{k} {sum(bool(re.match(p, t)) for t in body)}" for k, p in KINDS
                               if any(re.match(p, t) for t in body))
            print(f"    loop {start:#07x}-{end:#07x}: {len(body):4d} instructions ({counts})")
        if args.blocks:
            for a, body in blocks(guarded.get(low, [])):
                ops: dict = {}
                for t in body:
                    op = t.split()[1 if t.startswith("@") else 0].split(".")[0]
                    ops[op] = ops.get(op, 0) + 1
                top = ", ".join(f"{o} {n}" for o, n in sorted(ops.items(), key=lambda kv: -kv[1])[:5])
                print(f"    block {a:#07x}: {len(body):4d}  last: {body[-1][:44]:44s}  {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
