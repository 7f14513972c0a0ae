"""The speed machinery, behind one door: everything that makes a build faster than
`pipeline.build_site()` and nothing that changes what it writes.

- `builder.py`: `Builder`, the warm and `serve` builds (a build state kept between builds,
  the plan of what to redo, the writes);
- `loading.py`: the load stage over a whole site, with cached conversions and worker processes;
- `rendering.py`: the render stage over any subset of nodes, forked, with recorded reads;
- `deps.py`: recorded dependencies, fingerprints and the rebuild planner's graph;
- `cache.py`: the authenticated on-disk cache (conversions and the build state).

Each part calls the stage functions of `kbgen/` and adds no stage logic; the stages and
`pipeline.py` never import this package (tests/test_architecture.py checks), and
tests/test_incremental.py compares what `Builder` writes with `build_site()`.
"""

from kbgen.incremental.builder import Builder

__all__ = ["Builder"]
