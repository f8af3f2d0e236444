"""Sparse C code generator: a compacted, BatchNorm-folded network -> one self-contained C99 source whose
convolutions and linears visit only the non-zero weights, compiled for the host or a board.

Stages, one module each, in pipeline order (generate.py runs them):

- ``lower``: torch.fx graph -> IR (ir.py): tensors and one node per op, constants evaluated once;
- ``passes``: free functions that fuse ReLUs, residual adds and constants into convolutions and drop the
  channels nobody reads;
- ``quantise``: for an int8 target, int8 weights with one float scale per output channel (float sums);
- ``storage`` + ``memory``: concatenations and slices as views, in-place reuse, and a first-fit plan of one
  static arena (``plan_check`` replays a plan independently);
- ``forms``: the loop form of each convolution, measured on this machine (or by a rule for a board);
- ``emit``: one emitter per op (emit/conv.py, pool.py, eltwise.py) on a shared staged-window skeleton;
- ``writer``: the C source and its header (the ABI: ``int dass_edge_run(const float *, float *)``);
- ``build``: gcc or a Debian cross compiler -> shared library and the stand-alone timing program
  (bench_main.c), and running an ARM build under qemu-user.

See docs/codegen.md.
"""
