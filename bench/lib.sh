# shellcheck shell=bash disable=SC2034  # the variables set here are used by the scripts that source it
# Shared by the bench/*.sh scripts; source it after `set -euo pipefail`
# and after setting bench_name. One way to do each thing:
#   bench_log / bench_die        messages on stderr, prefixed with the script's name
#   bench_parse_args SPEC ARGS   the command line: the script's options, checked; --help
#   bench_server_list NAME...    --servers split into server_list, each one of NAME...
#   bench_wants SERVER           whether --servers names SERVER
#   bench_start_servers          start_<server> PORT for each, on free ports: server_port, server_pid
#   bench_programs PATH...       build (unless --no-build) and check build/release/PATH...
#   bench_start_nginx LOG DIR PORT WORKERS [CONNECTIONS]   nginx with the peer configuration of BENCHMARKS.md
#   bench_require_tools          a clear message naming scripts/bootstrap.sh when a tool is missing
#   bench_build TARGET...        bootstrap + configure + build with the release preset (build/release)
#   bench_workdir                a temporary directory for configs and logs (removed on success)
#   bench_start LOG CMD...       start a server in its own process group; stopped at exit, also on Ctrl-C
#   bench_stop LEADER            stop one group started by bench_start now (before the exit)
#   bench_children PID           the live child processes of PID
#   bench_rss_kb PID             VmRSS of PID in kB
#   bench_py ARGS...             bench/lib.py (ports, waiting for a server, medians and reports)
#   bench_shares PORT            established connections on local PORT per process, as JSON {"pid":n}
#   bench_now_us / bench_sleep_us US   the clock (EPOCHREALTIME, bash 5) in µs; a sleep of US µs
# Every server started with bench_start is stopped by the EXIT trap, whatever ends the script.

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$bench_dir")
# MULTINODE_BUILD_DIR measures another build of the same tree (with --no-build), e.g. build/uring.
build_dir="${MULTINODE_BUILD_DIR:-$repo_root/build/release}"
bench_name=${bench_name:-bench}
bench_work=""
bench_leaders=()      # pids of the processes bench_start started; each leads its own process group
bench_last_pid=""

bench_log() { printf '%s: %s\n' "$bench_name" "$*" >&2; }
bench_die() {
  printf '%s: error: %s\n' "$bench_name" "$*" >&2
  exit 1
}

bench_py() { python3 "$bench_dir/lib.py" "$@"; }

bench_now_us() {
  local t=$EPOCHREALTIME
  echo $((10#${t/[.,]/}))
}

bench_sleep_us() {
  [ "$1" -gt 0 ] || return 0
  sleep "$(printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)))"
}

bench_require_tools() {
  local tool missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    bench_die "not installed: ${missing[*]} (run scripts/bootstrap.sh bench)"
  fi
}

# Positive whole number check for option values: bench_require_count --rounds "$rounds" 1
bench_require_count() {
  local option=$1 value=$2 minimum=$3
  if ! [[ "$value" =~ ^[0-9]+$ ]] || [ "$value" -lt "$minimum" ]; then
    bench_die "$option wants a whole number >= $minimum, got '$value'"
  fi
}

# bench_parse_args SPEC "$@" parses the command line by SPEC, the space-separated
# options the script takes, each setting the variable of its name (dashes become
# underscores; the script sets the defaults before):
#   --name      a flag: name=1; --no-name sets name=0
#   --name=     takes a value
#   --name=#N   takes a whole number >= N
# -h/--help prints the script's usage and exits; any other argument prints the
# usage and fails. Sets bench_command to the command line, for the results file.
bench_parse_args() {
  local spec=$1 option entry candidate var
  shift
  bench_command="bench/$bench_name${*:+ $*}"
  while [ $# -gt 0 ]; do
    option=$1
    case "$option" in -h | --help) usage; exit 0 ;; esac
    entry=""
    for candidate in $spec; do
      if [ "${candidate%%=*}" = "$option" ]; then entry=$candidate; break; fi
    done
    if [ -z "$entry" ]; then
      usage >&2
      bench_die "unknown argument '$option'"
    fi
    var=${option#--}
    var=${var//-/_}
    if [[ "$entry" != *=* ]]; then
      if [[ "$var" == no_* ]]; then printf -v "${var#no_}" 0; else printf -v "$var" 1; fi
      shift
      continue
    fi
    if [ $# -lt 2 ] || [ -z "$2" ]; then bench_die "$option wants a value"; fi
    if [[ "$entry" == *=#* ]]; then bench_require_count "$option" "$2" "${entry#*=#}"; fi
    printf -v "$var" '%s' "$2"
    shift 2
  done
}

# bench_server_list NAME...: splits $servers (--servers) into the array server_list,
# in its order; each must be one of NAME..., once.
# shellcheck disable=SC2154  # servers is the script's
bench_server_list() {
  local server allowed=" $* " listed=" "
  IFS=, read -r -a server_list <<<"$servers"
  [ "${#server_list[@]}" -gt 0 ] || bench_die "--servers is empty"
  for server in "${server_list[@]}"; do
    if [[ "$allowed" != *" $server "* ]]; then
      bench_die "unknown server '$server' in --servers (use $(printf '%s, ' "$@" | sed 's/, $//'))"
    fi
    [[ "$listed" != *" $server "* ]] || bench_die "'$server' appears twice in --servers"
    listed+="$server "
  done
}

bench_wants() { [[ ",$servers," == *",$1,"* ]]; }

# bench_start_servers: starts each server of server_list with the script's
# start_<server> PORT, on a free loopback port each, and records them in the
# script's associative arrays server_port[SERVER] and server_pid[SERVER] (its leader).
# shellcheck disable=SC2004  # the arrays are associative: $server is a key
bench_start_servers() {
  local server ports index=0
  read -r -a ports <<<"$(bench_py free-ports "${#server_list[@]}")"
  for server in "${server_list[@]}"; do
    server_port[$server]=${ports[$index]}
    index=$((index + 1))
    "start_$server" "${server_port[$server]}"
    server_pid[$server]=$bench_last_pid
  done
}

# bench_programs PATH...: builds the targets of build/release/PATH... (a target is
# named as its program) unless --no-build was given, then checks that each exists.
bench_programs() {
  local path targets=()
  for path in "$@"; do targets+=("${path##*/}"); done
  [ "${build:-1}" = 0 ] || bench_build "${targets[@]}"
  for path in "$@"; do
    [ -x "$build_dir/$path" ] || bench_die "$build_dir/$path is missing: build it with
  cmake --preset release && cmake --build --preset release --target ${path##*/}"
  done
}

bench_workdir() {
  bench_work=$(mktemp -d "${TMPDIR:-/tmp}/multinode-bench-${bench_name%.sh}.XXXXXX")
}

# Builds TARGET... with the release preset, after installing missing packages.
# The build log goes to the work directory; its end is shown if the build fails.
bench_build() {
  local log="$bench_work/build.log"
  bench_log "checking packages (scripts/bootstrap.sh bench)"
  "$repo_root/scripts/bootstrap.sh" bench ||
    bench_die "scripts/bootstrap.sh bench failed: install the packages it names, then run again"
  bench_log "building $* (cmake --preset release; log: $log)"
  if ! (cd "$repo_root" && cmake --preset release && cmake --build --preset release --target "$@") >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    bench_die "building $* with the release preset failed (full log above: $log)"
  fi
}

# nginx as BENCHMARKS.md configures the peer (WORKERS worker processes, `return
# 200` of a 14-byte body), with its configuration and every path it writes in DIR.
# CONNECTIONS (default 1024) sets worker_connections, with the fd limit to match.
bench_start_nginx() {
  local log=$1 dir=$2 port=$3 workers=$4 connections=${5:-1024}
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
# The peer configuration of BENCHMARKS.md, with every path inside $dir.
worker_processes $workers;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log;
worker_rlimit_nofile $((connections + 64));
events { worker_connections $connections; }
http {
  access_log off;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port reuseport;
    location / { return 200 "Hello, World!\n"; }
  }
}
EOF
  bench_start "$log" nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
}

bench_start() {
  local log=$1
  shift
  # setsid makes the server a process-group leader (it does not fork: a background
  # job of a script is not one already), so stopping it reaches its children too.
  setsid "$@" >"$log" 2>&1 </dev/null &
  bench_last_pid=$!
  bench_leaders+=("$bench_last_pid")
}

# The fields of /proc/PID/stat after the command name: sets proc_state, proc_ppid, proc_pgrp.
bench_proc_stat() {
  local line
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  line=${line##*) }
  read -r proc_state proc_ppid proc_pgrp _ <<<"$line"
}

bench_children() {
  local entry pid
  for entry in /proc/[0-9]*; do
    pid=${entry#/proc/}
    if bench_proc_stat "$pid" && [ "$proc_ppid" = "$1" ] && [ "$proc_state" != Z ]; then
      echo "$pid"
    fi
  done
}

# The live (not zombie) members of process group $1.
bench_group_members() {
  local entry pid
  for entry in /proc/[0-9]*; do
    pid=${entry#/proc/}
    if bench_proc_stat "$pid" && [ "$proc_pgrp" = "$1" ] && [ "$proc_state" != Z ]; then
      echo "$pid"
    fi
  done
}

bench_rss_kb() {
  local rss
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || true
  [ -n "$rss" ] || bench_die "cannot read VmRSS of pid $1 (did it exit?)"
  echo "$rss"
}

# Sends TERM to every group started by bench_start, waits up to 5 s, then KILLs
# what is left, and reaps the leaders.
bench_stop_all() {
  local leader member deadline left
  [ "${#bench_leaders[@]}" -gt 0 ] || return 0
  for leader in "${bench_leaders[@]}"; do
    kill -TERM -- "-$leader" 2>/dev/null || true
  done
  deadline=$((SECONDS + 5))
  while :; do
    left=""
    for leader in "${bench_leaders[@]}"; do
      left+=$(bench_group_members "$leader")
    done
    if [ -z "$left" ] || [ "$SECONDS" -ge "$deadline" ]; then break; fi
    sleep 0.1
  done
  for leader in "${bench_leaders[@]}"; do
    for member in $(bench_group_members "$leader"); do
      bench_log "pid $member did not stop on TERM within 5 s: killing it"
      kill -KILL "$member" 2>/dev/null || true
    done
    wait "$leader" 2>/dev/null || true
  done
  bench_leaders=()
}

# Stops the group of LEADER (started by bench_start) as bench_stop_all does, reaps
# the leader and forgets it. Returns 1 when a member had to be killed.
bench_stop() {
  local leader=$1 member deadline forced=0 other kept=()
  kill -TERM -- "-$leader" 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while [ -n "$(bench_group_members "$leader")" ] && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.1
  done
  for member in $(bench_group_members "$leader"); do
    bench_log "pid $member did not stop on TERM within 5 s: killing it"
    kill -KILL "$member" 2>/dev/null || true
    forced=1
  done
  wait "$leader" 2>/dev/null || true
  for other in "${bench_leaders[@]}"; do
    [ "$other" = "$leader" ] || kept+=("$other")
  done
  bench_leaders=("${kept[@]}")
  return "$forced"
}

bench_on_exit() {
  local status=$?
  trap - EXIT INT TERM
  bench_stop_all
  if [ -n "$bench_work" ]; then
    if [ "$status" -eq 0 ] || [ -z "$(ls -A "$bench_work")" ]; then
      rm -rf "$bench_work"
    else
      bench_log "configs and logs kept in $bench_work"
    fi
  fi
  exit "$status"
}

trap bench_on_exit EXIT
trap 'bench_log "interrupted"; exit 130' INT
trap 'bench_log "terminated"; exit 143' TERM

# A line for the results file describing the run: bench_config_line KEY=JSONVALUE...
# (values must already be JSON: numbers, or strings made with bench_json_string).
# The connections each process holds on local port $1, from ss (server-agnostic:
# any server, nginx too): a JSON object {"PID": COUNT, ...}; {} when none or no ss.
# A socket shared by several processes (inherited, not yet closed) counts for each.
bench_shares() {
  command -v ss >/dev/null 2>&1 || { echo '{}'; return 0; }
  ss -tnpH state established "( sport = :$1 )" 2>/dev/null |
    grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -n | uniq -c |
    awk 'BEGIN { printf "{" } { printf "%s\"%s\":%d", (NR > 1 ? "," : ""), $2, $1 } END { print "}" }'
}

bench_json_string() {
  python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"
}

bench_config_line() {
  local fields="" pair
  for pair in "$@"; do
    fields+=",\"${pair%%=*}\":${pair#*=}"
  done
  printf '{"kind":"config","date":%s,"host":%s%s}\n' \
    "$(bench_json_string "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" \
    "$(bench_json_string "$(nproc) cores, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg) at start")" \
    "$fields"
}
