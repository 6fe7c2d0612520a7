#!/bin/sh
# worker-entrypoint.sh ARGS... - start nader-worker named after this
# container's host name (unique per container and per Kubernetes pod),
# so that `nader health --worker "$(hostname)"` finds it in the
# coordinator's status.  ARGS are nader-worker's flags.
exec nader-worker --name "$(hostname)" "$@"
