"""pmemd-generator: from ``/etc/pmemd.yaml`` alone, the units that make and mount each
region's DAX filesystem (:mod:`.generate`), the entry point systemd runs (:mod:`.main`),
and the writer of the cache the boot replays (:mod:`.cache`).

This package's ``__init__`` stays empty: the generator's fast path imports only ``os``."""
