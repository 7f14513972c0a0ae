"""`serve`, the live preview: build, serve the output folder, show every save in the open tabs.

One module per job:
- `command.py`: `run_serve` (the CLI's entry) and `PreviewSession`, which starts and stops
  the parts below;
- `loop.py`: the rebuild loop, on the main thread: a burst of saves from `kbgen.watch` ->
  one `Builder.build()` -> `hub.publish_*`;
- `reload.py`: `ReloadHub`, the only state the threads share, and the Server-Sent Events
  stream (`/__kbgen/events`) that tells each tab what changed or what failed;
- `server.py`, `handler.py`: the HTTP server (a thread per connection, bounded) and one
  connection's answer: a site file with the live-reload client injected, the client script,
  or the event stream;
- `safety.py`: request paths -> files inside the output folder, and the Host/Origin checks;
- `search_refresh.py`: the search thread, which re-indexes a moment after saves pause.

A save becomes a browser reload through `loop.py` (build, publish) and `reload.py` (the
event), then `kbgen/livereload.js` in the tab (reload, or swap the stylesheets, or show the
error overlay).
"""

from kbgen.serve.command import run_serve

__all__ = ["run_serve"]
