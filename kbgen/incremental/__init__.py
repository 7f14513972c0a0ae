"""The speed machinery, behind one door: everything that makes a build faster than
`pipeline.build_site()` and nothing that changes what it writes.

- `builder.py`: `Builder`, the warm and `serve` builds, one after another;
- `policy.py`: the rebuild policy, one table from each kind of change to what it causes;
- `inputs.py`, `plan.py`, `state.py`: this build's files, what changed and what to render
  again, the build state kept between builds;
- `loading.py`, `resolving.py`, `rendering.py`, `writing.py`: the load, resolve, render and
  write stages over a whole site: cached, updated after body edits, in worker processes
  (`workers.py`, injected), with recorded reads;
- `recording.py`, `fingerprints.py`, `deps.py`: recorded dependencies (what each rendered
  node read), their fingerprints, and the rebuild planner's graph;
- `sealing.py`, `cache.py`, `markup_store.py`, `markup_keys.py`, `stamps.py`: the
  authenticated on-disk cache (its secret and envelopes; the folder, the build state and
  compiled templates; conversions and their keys) and the file stamps that skip re-reading.

Each part calls the stage functions of `kbgen/` and adds no stage logic; the stages and
`pipeline.py` never import this package (tests/test_architecture.py checks), and
tests/test_incremental.py compares what `Builder` writes with `build_site()`.
"""

from kbgen.incremental.builder import Builder

__all__ = ["Builder"]
