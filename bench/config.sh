#!/bin/bash
# Sourced by the bench scripts: the Parley config every figure is measured
# with (one tenant with an HS256 secret, history_size 1000, no per-IP cap),
# and waiting for a server's port.

# parley_bench_config FILE SECRET
parley_bench_config() {
    cat >"$1" <<CONF
tenants:
  - id: bench
    jwt_secret: "$2"
namespaces:
  - name: ""
    history_size: 1000
limits:
  max_connections_per_ip: 100000
CONF
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s at most).
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}
