"""The boot path: which bootloader (:mod:`.detect`), its backend (:mod:`.backends`), writing
through it with rollback (:mod:`.apply`), reconcile and removal, the reboot guard's markers
and reboot, and what ``pmemd plan`` shows of the bootloader (:mod:`.view`)."""
