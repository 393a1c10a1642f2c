#!/bin/sh
# The entrypoint of the test node's `prom/mysqld-exporter` image: the real program, as the
# upstream image runs it (the Pod's args are its flags).
exec /usr/bin/mysqld_exporter "$@"
