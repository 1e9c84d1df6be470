#!/usr/bin/env bash
# test-s3.sh: run the store tests against every backend, S3 included: start a
# local S3 server (scripts/s3-server.sh), run `go test -race ./store/...` with
# FLIGHTBATCH_REQUIRE_S3=1 so that the S3 tests cannot skip, and stop the
# server on exit. Extra arguments go to `go test`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

S3_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flightbatch-s3.XXXXXX")"
cleanup() {
	local rc=$?
	"$ROOT/scripts/s3-server.sh" stop "$S3_DIR" || rc=1
	rm -rf "$S3_DIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ENV_FILE="$("$ROOT/scripts/s3-server.sh" start "$S3_DIR")"
# shellcheck source=/dev/null
source "$ENV_FILE"
export FLIGHTBATCH_REQUIRE_S3=1

go test -race -count=1 "$@" ./store/...
