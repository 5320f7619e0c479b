"""The manager: forks, watches and replaces workers; never touches client sockets."""
