"""The commands: ``pmemd`` (:mod:`.entry`, :mod:`.pmemd`, :mod:`.commands`) and ``pmemctl``
(:mod:`.ctl`), argv in, exit statuses out.

This package's ``__init__`` stays empty: the boot's fast path enters through it."""
