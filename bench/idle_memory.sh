#!/usr/bin/env bash
# Memory per idle keep-alive HTTP connection: multinode's hello and nginx, one
# serving process each, in the same run. For each server: RSS of the serving
# process, then bench/idle_clients opens N connections and sends one request on
# each, then RSS again once every answer is in; bytes per connection = the RSS
# difference / N. Then every connection sends a second request (all must be
# served: idle is not dead), and the server is stopped. Method: docs/http.md,
# "Memory per connection".
set -euo pipefail
bench_name=idle_memory.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/idle_memory.sh [--connections N] [--servers LIST] [--settle S] [--no-build]

  --connections N  idle keep-alive connections held open to each server (default 10000)
  --servers LIST   comma-separated subset of multinode,nginx (default: both; the
                   ratio needs both)
  --settle S       seconds to wait after the last answer before reading RSS (default 2)
  --no-build       use build/release as it is instead of bootstrapping and building

multinode runs as `hello --nodes 1` (one process, which serves) with a long idle
timeout; nginx with worker_processes 1 and worker_connections 1.125 N + 64 (it
drops keep-alive connections when fewer than 1/16 are free). Needs a hard limit
on open files above that (ulimit -Hn); the script raises the soft limit to it for
the servers and the client.
EOF
}

connections=10000 servers=multinode,nginx settle=2 build=1
bench_parse_args "--connections=#1 --servers= --settle=#0 --no-build" "$@"
bench_server_list multinode nginx

tools=(python3 setsid)
bench_wants nginx && tools+=(nginx)
bench_require_tools "${tools[@]}"
bench_workdir

programs=(bench/idle_clients)
bench_wants multinode && programs+=(examples/hello)
bench_programs "${programs[@]}"

needed=$((connections + 64))
nginx_files=$((needed + connections / 8 + 64))  # worker_rlimit_nofile of start_nginx
hard=$(ulimit -Hn)
want_files=$needed
bench_wants nginx && want_files=$nginx_files
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want_files" ]; then
  bench_die "the hard limit on open files is $hard; $connections connections need $want_files: lower --connections or raise the limit (limits.conf)"
fi
ulimit -Sn "$hard" # inherited by the servers (hello keeps the limit it is given) and the client

start_multinode() {
  # One process, which serves (--nodes counts the master); an idle timeout longer than the run.
  bench_start "$bench_work/multinode.log" "$build_dir/examples/hello" --port "$1" --nodes 1 \
    --host 127.0.0.1 --idle-timeout 600000
}

start_nginx() {
  # nginx closes keep-alive connections to make room once fewer than 1/16 of its
  # worker_connections are free: leave it an eighth more than the run needs.
  bench_start_nginx "$bench_work/nginx.log" "$bench_work/nginx" "$1" 1 $((needed + connections / 8))
}

# The serving process of a server: hello's only process, nginx's worker.
serving_pid() {
  case "$1" in
    multinode) echo "$2" ;;
    nginx) bench_children "$2" | head -n 1 ;;
  esac
}

declare -A server_port server_pid per_connection
read -r -a ports <<<"$(bench_py free-ports "${#server_list[@]}")"
index=0
for server in "${server_list[@]}"; do
  port=${ports[$index]}
  index=$((index + 1))
  "start_$server" "$port"
  leader=$bench_last_pid
  bench_py wait-http "$port" 20 >/dev/null ||
    bench_die "$server did not come up on port $port; its output:
$(tail -n 20 "$bench_work/$server.log")"
  pid=""
  for _ in $(seq 100); do
    pid=$(serving_pid "$server" "$leader")
    [ -n "$pid" ] && break
    sleep 0.1
  done
  [ -n "$pid" ] || bench_die "$server: no serving process within 10 s"
  sleep "$settle"
  before=$(bench_rss_kb "$pid")

  # The client holds the connections until it reads a line on its stdin.
  coproc CLIENT { "$build_dir/bench/idle_clients" --port "$port" --connections "$connections" 2>&1; }
  client_pid=$CLIENT_PID
  read -r -t 120 status count <&"${CLIENT[0]}" || bench_die "$server: idle_clients did not get ready within 120 s"
  [ "$status" = ready ] || bench_die "$server: idle_clients: $status $count"
  sleep "$settle"
  after=$(bench_rss_kb "$pid")
  echo >&"${CLIENT[1]}"
  read -r -t 120 served_line <&"${CLIENT[0]}" || served_line="(no answer)"
  wait "$client_pid" || bench_die "$server: not every idle connection served its second request: $served_line"

  bench_stop "$leader" || true
  per_connection[$server]=$(((after - before) * 1024 / connections))
  printf '%-10s %6d connections  RSS before %7d kB  after %7d kB  %6d bytes per idle connection  (%s)\n' \
    "$server" "$connections" "$before" "$after" "${per_connection[$server]}" "$served_line"
done

if bench_wants multinode && bench_wants nginx; then
  python3 -c 'import sys; m, n = int(sys.argv[1]), int(sys.argv[2]); print("ratio multinode/nginx: %s" % ("%.2f" % (m / n) if n > 0 else "n/a (nginx grew by %d bytes per connection)" % n))' \
    "${per_connection[multinode]}" "${per_connection[nginx]}"
fi
