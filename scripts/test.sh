#!/usr/bin/env bash
# scripts/test.sh: the flightbatch test command. Run from anywhere; it works in the repo root.
#
#   1. system packages (only what is missing: Go, a C compiler for -race, Python 3.11+ with venv,
#      Chromium and chromium-driver for the browser test)
#   2. go build -o bin/flightbatch ./cmd/flightbatch
#   3. gofmt, go vet and staticcheck; go vet for darwin, freebsd and windows (in the background
#      from step 2 on, waited for after step 5)
#   4. a real S3-compatible server for the store tests (if scripts/s3-server.sh exists), and a
#      single-node Slurm cluster with accounting (MariaDB + slurmdbd, so that sacct works) for the
#      Slurm executor's tests (scripts/slurm.sh; started in the background after step 1, as it
#      takes about 12 s)
#   5. go test -race ./..., then compute's tests and the demo dataset's bits test built for
#      GOAMD64=v3 where the processor can run them (their results compared, bit for bit, with a
#      GOAMD64=v1 build's)
#   6. .venv from requirements.txt (reinstalled only when it changed), the flightbatch Python
#      package from python/ (reinstalled only when it changed), then pytest tests/python
#
# The Python side runs at the same time as the Go side, as most of its time is spent waiting
# (on servers, jobs and clusters): .venv is made in the background from step 1 on, and pytest
# runs in the background from step 2 on, with an S3 server and a Slurm cluster of its own (the
# Go tests take the Slurm node down, and restart nothing of pytest's); its output, kept in a
# log, is printed when it ends, after the Go side's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

START=$SECONDS
SECTION_START=$SECONDS
S3_DIR=""
PY_S3_DIR=""
SLURM_DIR=""
PY_SLURM_DIR=""
BG_DIR="" # the logs and exit codes of the background steps (bg_start, bg_wait)
PY_PID=""

section() {
	if [[ -n "${SECTION_NAME:-}" ]]; then
		echo "--- ${SECTION_NAME} done in $((SECONDS - SECTION_START))s"
	fi
	SECTION_NAME="$1"
	SECTION_START=$SECONDS
	echo
	echo "=== $1"
}

finish() {
	local code=$? d
	# pytest still running (the Go side failed): it stops with its servers, its process group.
	if [[ -n "$PY_PID" ]] && kill -0 "$PY_PID" 2>/dev/null; then
		kill -TERM -- "-$PY_PID" 2>/dev/null || true
		wait "$PY_PID" 2>/dev/null || true
	fi
	for d in "$S3_DIR" "$PY_S3_DIR"; do
		[[ -n "$d" ]] || continue
		bash scripts/s3-server.sh stop "$d" >/dev/null 2>&1 || echo "warning: could not stop the S3 test server of $d" >&2
		rm -rf "$d"
	done
	wait # the background steps left: a cluster half started is stopped below
	for d in "$SLURM_DIR" "$PY_SLURM_DIR"; do
		[[ -n "$d" ]] || continue
		bash scripts/slurm.sh stop "$d" >/dev/null 2>&1 || echo "warning: could not stop the Slurm test cluster of $d" >&2
		rm -rf "$d" 2>/dev/null || sudo -n rm -rf "$d" || true
	done
	[[ -z "$BG_DIR" ]] || rm -rf "$BG_DIR"
	echo
	if [[ $code -eq 0 ]]; then
		echo "=== all passed in $((SECONDS - START))s"
	else
		echo "=== FAILED (exit $code) during '${SECTION_NAME:-setup}' after $((SECONDS - START))s"
	fi
	exit "$code"
}
trap finish EXIT
trap 'exit 130' INT TERM

# bg_start NAME CMD...: runs CMD in the background (set -e holds in it), its output to
# $BG_DIR/NAME.log and its exit code to $BG_DIR/NAME.rc. bg_wait NAME: waits for it, from this
# shell or a background one.
bg_start() {
	local name="$1"
	shift
	(
		trap 'echo $? >"$BG_DIR/$name.rc.tmp"; mv "$BG_DIR/$name.rc.tmp" "$BG_DIR/$name.rc"' EXIT
		"$@" >"$BG_DIR/$name.log" 2>&1
	) &
}
bg_wait() {
	while [[ ! -f "$BG_DIR/$1.rc" ]]; do sleep 0.5; done
	return "$(cat "$BG_DIR/$1.rc")"
}

# ---------------------------------------------------------------------------------------------
section "system packages"

python_ok() {
	command -v python3 >/dev/null &&
		python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v gcc >/dev/null || command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v git >/dev/null || missing+=(git)
python_ok || missing+=(python3 python3-venv)
# headless Chromium and its WebDriver for the browser test of the jobs page
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [[ ${#missing[@]} -gt 0 ]]; then
	echo "installing: ${missing[*]}"
	SUDO=()
	[[ "$(id -u)" -eq 0 ]] || SUDO=(sudo)
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	python_ok || { echo "python3 >= 3.11 with venv is still missing" >&2; exit 1; }
else
	echo "nothing to install"
fi
echo "$(go version); $(python3 --version)"

BG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flightbatch-test.XXXXXX")"

# The Slurm test clusters start meanwhile (waited for before the tests): one for go test, one
# for pytest.
SLURM_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flightbatch-slurm.XXXXXX")"
bg_start slurm bash scripts/slurm.sh start --accounting "$SLURM_DIR"
PY_SLURM_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flightbatch-slurm.XXXXXX")"
bg_start py-slurm bash scripts/slurm.sh start --accounting "$PY_SLURM_DIR"

# .venv is made meanwhile (waited for before pytest).
python_env() {
	local stamp=".venv/.requirements.sha256" want pkg_stamp=".venv/.flightbatch-python.sha256" pkg_want
	want="$( (python3 --version; cat requirements.txt) | sha256sum | cut -d' ' -f1)"
	if [[ -x .venv/bin/python && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		echo ".venv is up to date with requirements.txt"
	else
		echo "creating .venv from requirements.txt"
		rm -rf .venv
		python3 -m venv .venv
		.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
		echo "$want" >"$stamp"
	fi
	# The client package, installed as a user installs it (pip install ./python).
	pkg_want="$(find python -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -path 'python/build/*' -print0 |
		sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
	if [[ -f "$pkg_stamp" && "$(cat "$pkg_stamp")" == "$pkg_want" ]]; then
		echo "the flightbatch package in .venv is up to date with python/"
	else
		echo "installing the flightbatch package from python/"
		.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --force-reinstall ./python
		echo "$pkg_want" >"$pkg_stamp"
	fi
}
bg_start venv python_env

# ---------------------------------------------------------------------------------------------
section "go build"
go build -o bin/flightbatch ./cmd/flightbatch
echo "built bin/flightbatch"

# The module and its tests type-checked for the other systems flightbatch builds for (see the
# README's "Systems"), meanwhile (waited for after the Go tests): go vet type-checks every package,
# main packages and tests included, as a build would, and runs its checks.
cross_vet() {
	local goos
	for goos in darwin freebsd windows; do
		GOOS=$goos nice -n 10 go vet ./...
		echo "GOOS=$goos go vet: ok"
	done
}
bg_start cross cross_vet

# ---------------------------------------------------------------------------------------------
py_s3_env=""
if [[ -x scripts/s3-server.sh || -f scripts/s3-server.sh ]]; then
	section "S3 test servers"
	S3_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flightbatch-s3.XXXXXX")"
	env_file="$(bash scripts/s3-server.sh start "$S3_DIR")"
	PY_S3_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flightbatch-s3.XXXXXX")"
	py_s3_env="$(bash scripts/s3-server.sh start "$PY_S3_DIR")"
	# shellcheck disable=SC1090
	source "$env_file"
	export FLIGHTBATCH_REQUIRE_S3=1
	echo "S3 at ${AWS_ENDPOINT_URL_S3:-?}, bucket ${FLIGHTBATCH_TEST_S3_BUCKET:-?}; pytest's at $(sed -n 's/^export AWS_ENDPOINT_URL_S3=//p' "$py_s3_env")"
fi

# ---------------------------------------------------------------------------------------------
section "pytest tests/python, in the background"
# Its own S3 server and Slurm cluster; the browser test fails, rather than skips, when Chromium
# is missing here.
python_tests() {
	local t0=$SECONDS code=0
	bg_wait venv || { cat "$BG_DIR/venv.log"; echo "making .venv failed" >&2; return 1; }
	cat "$BG_DIR/venv.log"
	wait_slurm py-slurm "$PY_SLURM_DIR" || return 1
	# shellcheck disable=SC1090
	[[ -z "$py_s3_env" ]] || source "$py_s3_env"
	export FLIGHTBATCH_REQUIRE_CHROMIUM=1
	echo "pytest started $((SECONDS - START))s into the run"
	FLIGHTBATCH_BIN="$ROOT/bin/flightbatch" .venv/bin/python -m pytest -q tests/python || code=$?
	echo "--- pytest took $((SECONDS - t0))s, .venv and its Slurm cluster included"
	return "$code"
}
# wait_slurm NAME DIR: waits for the Slurm cluster started (bg_start NAME) for DIR, and sources
# its env file.
wait_slurm() {
	local ok=0
	bg_wait "$1" || ok=$?
	cat "$BG_DIR/$1.log"
	[[ $ok -eq 0 ]] || { echo "the Slurm test cluster did not start (exit $ok)" >&2; return 1; }
	# shellcheck disable=SC1090
	source "$2/slurm.env"
	echo "Slurm cluster up with accounting, SLURM_CONF=$SLURM_CONF"
}
# A process group of its own (set -m), so that a failure of the Go side stops it and its servers.
set -m
bg_start pytest python_tests
PY_PID=$!
set +m
echo "its output follows the Go side's"

# ---------------------------------------------------------------------------------------------
section "gofmt, go vet and staticcheck"
mapfile -t unformatted < <(find . \( -path ./.venv -o -path ./.cache -o -path ./.git -o -path ./vendor -o -path ./bin \) -prune \
	-o -name '*.go' -print0 | xargs -0 -r gofmt -l)
if [[ ${#unformatted[@]} -gt 0 ]]; then
	echo "gofmt: these files are not formatted (run gofmt -w):" >&2
	printf '  %s\n' "${unformatted[@]}" >&2
	exit 1
fi
echo "gofmt: ok"
go vet ./...
echo "go vet: ok"
if [[ ! -x .cache/bin/staticcheck ]]; then
	GOBIN="$ROOT/.cache/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
.cache/bin/staticcheck ./...
echo "staticcheck: ok"

# ---------------------------------------------------------------------------------------------
section "Slurm test cluster"
wait_slurm slurm "$SLURM_DIR"

# ---------------------------------------------------------------------------------------------
section "go test -race"
go test -race -count=1 -timeout 25m ./...

# ---------------------------------------------------------------------------------------------
section "compute built for GOAMD64=v3"
# compute's results and the demo dataset are the same bits whatever GOAMD64 the binary is built
# for: where this processor runs x86-64-v3 code (the level at which the compiler may fuse
# multiply-adds), compute's tests and dataset's TestBitsAcrossBuilds run built for v3 and compare
# their results with those of a GOAMD64=v1 build.
v3_missing=""
for f in avx avx2 bmi1 bmi2 f16c fma movbe abm; do
	grep -qw "$f" /proc/cpuinfo 2>/dev/null || v3_missing+=" $f"
done
if [[ "$(go env GOARCH)" != amd64 ]]; then
	echo "skipped: GOARCH is $(go env GOARCH), not amd64"
elif [[ -n "$v3_missing" ]]; then
	echo "skipped: this processor does not run x86-64-v3 code (no$v3_missing)"
else
	bits="$(mktemp -d "${TMPDIR:-/tmp}/flightbatch-bits.XXXXXX")"
	FLIGHTBATCH_BITS_OUT="$bits" GOAMD64=v1 go test -count=1 -run '^TestBitsAcrossBuilds$' ./compute/ ./dataset/ ||
		{ rm -rf "$bits"; exit 1; }
	FLIGHTBATCH_BITS_WANT="$bits" GOAMD64=v3 go test -count=1 ./compute/ || { rm -rf "$bits"; exit 1; }
	FLIGHTBATCH_BITS_WANT="$bits" GOAMD64=v3 go test -count=1 -run '^TestBitsAcrossBuilds$' ./dataset/ ||
		{ rm -rf "$bits"; exit 1; }
	rm -rf "$bits"
fi

# ---------------------------------------------------------------------------------------------
section "go vet for darwin, freebsd and windows"
cross_ok=0
bg_wait cross || cross_ok=$?
cat "$BG_DIR/cross.log"
[[ $cross_ok -eq 0 ]] || { echo "the module does not type-check for every system (see above)" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
section "pytest tests/python"
py_ok=0
bg_wait pytest || py_ok=$?
PY_PID=""
cat "$BG_DIR/pytest.log"
[[ $py_ok -eq 0 ]] || exit "$py_ok"
echo "--- ${SECTION_NAME} done in $((SECONDS - SECTION_START))s (waited for)"
