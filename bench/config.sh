#!/bin/bash
# Sourced by the bench scripts: the Parley config every figure is measured
# with (one tenant with an HS256 secret, history_size 1000, no per-IP cap).

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
