"""Workers: one process hosting one application; never touches a client socket."""
