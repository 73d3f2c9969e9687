#!/usr/bin/env bash
# The short fuzz run for CI: builds every cargo-fuzz target and runs each for
# FUZZ_SECONDS (default 60: the unoptimised build replays peer_rpc's 2,212 inputs in 20 to
# 35 s; the rest goes to new ones) on the checked-in corpus (corpus/<target>/, read only:
# new inputs go to a scratch directory). Exits non-zero if a target crashes, hangs, or does not
# build; exits 0 with a "skipped" line if no toolchain for cargo-fuzz can be had.
#
# Toolchain, first that works: an installed nightly (`cargo +nightly`); one installed now
# with `rustup toolchain install nightly --profile minimal`; the default (stable) toolchain
# with RUSTC_BOOTSTRAP=1, which lets it take cargo-fuzz's -Z flags. cargo-fuzz itself is
# installed from crates.io (`cargo install cargo-fuzz --locked`) when missing.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS (space-separated subset),
# FUZZ_SANITIZER (address, the default, or none), FUZZ_BUILD (dev, the default: without
# optimisation, debug assertions on, a cold build takes 6 minutes here against 14 for
# cargo-fuzz's optimised one, and a smoke run needs no speed; release for long runs),
# FUZZ_CODEGEN_UNITS (default 16: cargo-fuzz's own 1 left one of two cores idle
# through most of the build), FUZZ_TOOLCHAIN=bootstrap (skip nightly:
# take the stable route straight away), FUZZ_TARGET_DIR (the build directory;
# default ~/.cache/musubi-fuzz-target, outside the checkout, so that a later run on the
# same machine, even from another clone, rebuilds only musubi's own crates).
set -uo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-address}
codegen_units=${FUZZ_CODEGEN_UNITS:-16}
build_profile=${FUZZ_BUILD:-dev}
case $build_profile in
    dev) build_mode=(--dev) ;;
    release) build_mode=(--release) ;;
    *) echo "fuzz: FUZZ_BUILD must be dev or release" >&2; exit 2 ;;
esac
target_dir=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/musubi-fuzz-target}
skip() {
    echo "fuzz: skipped: $*"
    exit 0
}
log() { echo "fuzz: $*"; }

command -v cargo >/dev/null || skip "no cargo on PATH"

# --- toolchain ---
toolchain=()
if [[ ${FUZZ_TOOLCHAIN:-} == bootstrap ]]; then
    export RUSTC_BOOTSTRAP=1
    log "toolchain: default with RUSTC_BOOTSTRAP=1, as asked ($(rustc --version))"
elif cargo +nightly --version >/dev/null 2>&1; then
    toolchain=(+nightly)
    log "toolchain: installed nightly ($(rustc +nightly --version))"
elif command -v rustup >/dev/null &&
    timeout 300 rustup toolchain install nightly --profile minimal >/tmp/fuzz-rustup.log 2>&1 &&
    cargo +nightly --version >/dev/null 2>&1; then
    toolchain=(+nightly)
    log "toolchain: nightly installed by rustup ($(rustc +nightly --version))"
else
    log "no nightly (rustup: $(tail -n 1 /tmp/fuzz-rustup.log 2>/dev/null || echo 'not available'))"
    export RUSTC_BOOTSTRAP=1
    log "toolchain: default with RUSTC_BOOTSTRAP=1 ($(rustc --version))"
fi

# --- cargo-fuzz ---
if ! cargo "${toolchain[@]}" fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz from crates.io"
    if ! timeout 1200 cargo install cargo-fuzz --locked >/tmp/fuzz-install.log 2>&1; then
        tail -n 5 /tmp/fuzz-install.log
        skip "cargo-fuzz could not be installed (see above)"
    fi
fi
log "$(cargo "${toolchain[@]}" fuzz --version)"

# --- build ---
targets=${FUZZ_TARGETS:-$(cargo "${toolchain[@]}" fuzz list | tr "\n" " ")}
start=$SECONDS
build() { # sanitizer
    cargo "${toolchain[@]}" fuzz build "${build_mode[@]}" -s "$1" --codegen-units "$codegen_units" --target-dir "$target_dir" \
        >/tmp/fuzz-build.log 2>&1 ||
        { tail -n 40 /tmp/fuzz-build.log; return 1; }
}
if ! build "$sanitizer"; then
    if [[ -n ${RUSTC_BOOTSTRAP:-} && $sanitizer != none ]]; then
        # The stable route may lack the sanitizer runtime: try without one.
        log "build with -s $sanitizer failed on the stable route; retrying with -s none"
        sanitizer=none
        build none || { log "FAILED: the fuzz targets do not build"; exit 1; }
    else
        log "FAILED: the fuzz targets do not build"
        exit 1
    fi
fi
log "built in $((SECONDS - start)) s ($build_profile, sanitizer: $sanitizer)"

# --- run ---
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in $targets; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    log "running $t for ${seconds} s"
    # -timeout: one input taking this long is a hang, reported like a crash.
    # The same flags as the build, or cargo-fuzz would build again.
    if cargo "${toolchain[@]}" fuzz run "${build_mode[@]}" -s "$sanitizer" --codegen-units "$codegen_units" --target-dir "$target_dir" \
        "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1; then
        log "$t: ok, $(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$scratch/$t.log" | grep -Eo '[0-9]+$') executions"
    else
        failed+=("$t")
        log "$t: FAILED"
        grep -E -A 3 'panicked at' "$scratch/$t.log" | head -n 20
        grep -E 'ERROR: |SUMMARY: |Test unit written|^Reproduce with|cargo fuzz run' "$scratch/$t.log" | head -n 10
    fi
done
if ((${#failed[@]})); then
    log "FAILED: ${failed[*]} (reproducers in fuzz/artifacts/<target>/; see fuzz/README.md)"
    exit 1
fi
log "all targets ran without a crash: $targets"
