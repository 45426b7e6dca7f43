#!/bin/sh
# One `multinode run`, three languages: the worker of slot 1 is the C++ library
# program, slot 2 the Node.js client, every other slot the Python client. exec keeps
# the pid, so that LISTEN_PID names the program.
case "$MULTINODE_SLOT" in
  1) exec "$MIXED_CXX_WORKER" ;;
  2) exec node "$MIXED_DIR/worker.js" ;;
  *) exec /usr/bin/python3 "$MIXED_DIR/worker.py" ;;
esac
