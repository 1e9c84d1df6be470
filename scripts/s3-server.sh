#!/usr/bin/env bash
# s3-server.sh: a real S3-compatible server (versitygw, posix backend) for tests.
#
#   scripts/s3-server.sh install          install versitygw under .cache/bin (once)
#   scripts/s3-server.sh start DIR [ENV]  start it on a free 127.0.0.1 port (or $FLIGHTBATCH_S3_PORT,
#                                         so that a restarted server is found where it was), objects
#                                         under DIR, and write ENV (default DIR/s3.env) for `source`
#   scripts/s3-server.sh stop DIR|ENV     stop the server started for DIR (or recorded in ENV) and
#                                         wait for it to exit; succeeds if none is running
#
# The env file sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
# AWS_ENDPOINT_URL_S3, FLIGHTBATCH_TEST_S3_BUCKET, FLIGHTBATCH_TEST_S3_DIR (the
# posix root: an object is the file DIR/BUCKET/KEY) and FLIGHTBATCH_S3_SERVER_PID,
# one `export NAME=value` a line. `start` prints the env file's path on stdout and
# logs on stderr; the server's own log is DIR/versitygw.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
BIN_DIR="$ROOT/.cache/bin"
VERSITYGW="$BIN_DIR/versitygw"
STAMP="$BIN_DIR/versitygw.version"

# Fixed test credentials: the server only ever listens on 127.0.0.1.
ACCESS_KEY="flightbatch-test"
SECRET_KEY="flightbatch-test-secret"
BUCKET="flightbatch-test"

log() { echo "s3-server: $*" >&2; }
die() { log "$*"; exit 1; }

install_gw() {
	if [[ -x "$VERSITYGW" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSITYGW_VERSION" ]]; then
		return 0
	fi
	command -v go >/dev/null || die "go is needed to install versitygw"
	mkdir -p "$BIN_DIR"
	log "installing versitygw $VERSITYGW_VERSION into $BIN_DIR"
	GOBIN="$BIN_DIR" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	echo "$VERSITYGW_VERSION" >"$STAMP"
}

# free_port prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# healthy PORT succeeds when versitygw answers its health check on 127.0.0.1:PORT.
healthy() {
	python3 - "$1" <<'PY'
import sys, http.client
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=1)
    c.request("GET", "/health")
    sys.exit(0 if c.getresponse().status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

start() {
	local dir="${1:?usage: s3-server.sh start DIR [ENV]}"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	local env_file="${2:-$dir/s3.env}"
	local data="$dir/data" logf="$dir/versitygw.log"
	if [[ -f "$env_file" ]]; then
		local old_pid
		old_pid="$(sed -n 's/^export FLIGHTBATCH_S3_SERVER_PID=//p' "$env_file")"
		if [[ -n "$old_pid" ]] && kill -0 "$old_pid" 2>/dev/null; then
			die "a server (pid $old_pid) is already running for $dir; stop it first"
		fi
	fi
	install_gw
	# posix backend: a bucket is a directory under the backend's root.
	mkdir -p "$data/$BUCKET"
	local attempt port pid
	for attempt in 1 2 3 4 5; do
		port="${FLIGHTBATCH_S3_PORT:-$(free_port)}"
		ROOT_ACCESS_KEY="$ACCESS_KEY" ROOT_SECRET_KEY="$SECRET_KEY" \
			"$VERSITYGW" --port "127.0.0.1:$port" --health /health --quiet posix "$data" >"$logf" 2>&1 </dev/null &
		pid=$!
		local i
		for i in $(seq 1 100); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break # exited: most likely the port was taken meanwhile
			fi
			# Still running and healthy: the answer came from this server, not
			# from another that held the port.
			if healthy "$port" && kill -0 "$pid" 2>/dev/null; then
				write_env "$env_file" "$port" "$pid" "$dir"
				log "versitygw pid $pid on 127.0.0.1:$port, data in $data"
				echo "$env_file"
				return 0
			fi
			sleep 0.05
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		log "attempt $attempt on port $port failed: $(tail -n 3 "$logf" 2>/dev/null | tr '\n' ' ')"
	done
	die "versitygw did not start; see $logf"
}

write_env() {
	local env_file="$1" port="$2" pid="$3" dir="$4"
	local tmp="$env_file.tmp.$$"
	cat >"$tmp" <<ENV
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port
export FLIGHTBATCH_TEST_S3_BUCKET=$BUCKET
export FLIGHTBATCH_TEST_S3_DIR=$dir/data
export FLIGHTBATCH_S3_SERVER_PID=$pid
ENV
	mv "$tmp" "$env_file"
}

stop() {
	local arg="${1:?usage: s3-server.sh stop DIR|ENV}"
	local env_file="$arg"
	[[ -d "$arg" ]] && env_file="$arg/s3.env"
	# Stopping what is not running succeeds, so an exit trap may always call stop.
	if [[ ! -f "$env_file" ]]; then
		log "no env file $env_file: nothing to stop"
		return 0
	fi
	local pid
	pid="$(sed -n 's/^export FLIGHTBATCH_S3_SERVER_PID=//p' "$env_file")"
	if [[ -z "$pid" ]]; then
		log "no server recorded in $env_file: nothing to stop"
		return 0
	fi
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		local i
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid still running after 5 s; killing it"
			kill -9 "$pid" 2>/dev/null || true
			while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
		fi
	fi
	sed -i '/^export FLIGHTBATCH_S3_SERVER_PID=/d' "$env_file"
	log "stopped pid $pid"
}

case "${1:-}" in
install) install_gw ;;
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
*) die "usage: $0 install | start DIR [ENV] | stop DIR|ENV" ;;
esac
