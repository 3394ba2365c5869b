"""The D-Bus service ``io.pmemd1``: its wire contract (:mod:`.api`, all a client needs), the
work it does whatever the transport (:mod:`.operations`), the dbus-next objects
(:mod:`.objects`) and server (:mod:`.server`), polkit (:mod:`.polkit`), and the client side
``pmemctl`` uses (:mod:`.client`)."""
