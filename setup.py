"""Build fastcnn's compiled kernels: Cython modules in fastcnn/_kernels/, plain C in csrc/.

OpenMP is probed once per build by compiling and running a tiny `#pragma omp parallel`
program; when that fails the kernels build serially with a warning. The default flags are
portable (no -march=native): set FASTCNN_NATIVE=1 to tune for the build machine instead.
An extension's C sources compile in parallel, one per usable CPU (FASTCNN_BUILD_JOBS=N: N).

Two switches build checked kernels for testing (tools/check_debug.sh, tools/check_sanitizers.sh),
never for release: FASTCNN_DEBUG=1 turns on Cython's bounds, wraparound and initialisation checks
and Python's division semantics, at -O0 -g; FASTCNN_SANITIZE=1 compiles and links with
AddressSanitizer and UndefinedBehaviorSanitizer (with both, C division stays, at -O1).
"""
import concurrent.futures
import os
import re
import shutil
import subprocess
import tempfile
import threading
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTCNN_DEBUG") == "1"
SANITIZE = os.environ.get("FASTCNN_SANITIZE") == "1"

KERNELS = {
    "fastcnn._kernels.runtime": ["fastcnn/_kernels/runtime.pyx", "csrc/runtime.c",
                                 "csrc/memcache.c"],
    # the slowest to compile first, so that the parallel compile (BuildExt) ends together
    "fastcnn._kernels.conv": ["csrc/conv_avx512.c", "csrc/conv_avx2.c", "csrc/conv_base.c",
                              "fastcnn/_kernels/conv.pyx", "csrc/conv.c"],
    "fastcnn._kernels.pool": ["fastcnn/_kernels/pool.pyx", "csrc/pool.c"],
    "fastcnn._kernels.eltwise": ["fastcnn/_kernels/eltwise.pyx", "csrc/eltwise.c"],
}

OMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n >= 1 ? 0 : 1;
}
"""


def local_includes(sources):
    """The files in csrc that the C sources #include "...", directly or through one another.
    setuptools rebuilds an extension when its sources or `depends` change, and knows nothing
    of #include (Cython tracks the headers a .pyx names, not what the C files include)."""
    found, todo = set(), [source for source in sources if source.endswith(".c")]
    while todo:
        with open(todo.pop()) as f:
            for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read(), re.M):
                path = os.path.join("csrc", name)
                if path not in found and os.path.exists(path):
                    found.add(path)
                    todo.append(path)
    return sorted(found)


def openmp_flags(compiler):
    """Compile, link and run the probe; return (compile, link) flags, or None if it fails."""
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"]), (["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    tmp = tempfile.mkdtemp(prefix="fastcnn-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OMP_PROBE)
        for cflags, lflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                exe = os.path.join(tmp, "probe")
                compiler.link_executable(objs, exe, extra_postargs=lflags)
                subprocess.run([exe], check=True, capture_output=True, timeout=60)
                return cflags, lflags
            except Exception:  # any failure means: no usable OpenMP with these flags
                continue
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_jobs():
    """Sources compiled at once: FASTCNN_BUILD_JOBS, else the CPUs this process may use."""
    value = os.environ.get("FASTCNN_BUILD_JOBS", "")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"FASTCNN_BUILD_JOBS must be a positive integer, got {value!r}")
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def compile_in_parallel(compiler, jobs):
    """Make compiler.compile build its sources in threads, at most `jobs` compilers running
    at once over all extensions (which build_ext also builds side by side): distutils
    compiles an extension's sources one after another, and the conv extension's three
    instruction-set variants would leave the other cores idle."""
    serial = compiler.compile
    running = threading.BoundedSemaphore(jobs)

    def one(source, *args, **kwargs):
        with running:
            return serial([source], *args, **kwargs)

    def compile(sources, *args, **kwargs):
        with concurrent.futures.ThreadPoolExecutor(len(sources) or 1) as pool:
            futures = [pool.submit(one, source, *args, **kwargs) for source in sources]
            return [obj for future in futures for obj in future.result()]

    compiler.compile = compile


class BuildExt(build_ext):
    def build_extensions(self):
        unix = self.compiler.compiler_type != "msvc"
        # -g0: Python's own flags ask for debug information, a third of the compile time
        cflags = (["-O3", "-g0", "-fno-math-errno", "-fno-trapping-math", "-Wno-psabi"] if unix
                  else ["/O2"])
        lflags = []
        if DEBUG and unix:
            cflags += ["-O0", "-g"]
        if SANITIZE and unix:
            # -fno-wrapv (Python's flags have -fwrapv) so that signed overflow is reported;
            # -O1, as ASan advises: the unrolled microkernels, instrumented at -O3, take
            # several times as long to compile, and every load and store is checked at
            # either level
            sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
            cflags += sanitizers + ["-O1", "-fno-omit-frame-pointer", "-fno-wrapv", "-g"]
            # freed buffers kept for reuse would hide a use after free from ASan
            cflags.append("-DFC_CACHE_DEFAULT_LIMIT=0")
            lflags += sanitizers
        if DEBUG or SANITIZE:
            self.force = True  # never reuse objects of an unchecked build
        if os.environ.get("FASTCNN_NATIVE") == "1" and unix:
            cflags.append("-march=native")
        omp = openmp_flags(self.compiler)
        if omp is None:
            warnings.warn("fastcnn: the compiler cannot build and run an OpenMP program; "
                          "building the kernels single-threaded")
        else:
            cflags += omp[0]
            lflags += omp[1]
        for ext in self.extensions:
            ext.extra_compile_args = cflags + ext.extra_compile_args
            ext.extra_link_args = lflags + ext.extra_link_args
        jobs = build_jobs()
        if jobs > 1 and unix:  # MSVC's compiler object sets itself up on first use
            compile_in_parallel(self.compiler, jobs)
            self.parallel = len(self.extensions)  # extensions side by side, gcc `jobs` at once
        super().build_extensions()


extensions = [
    Extension(name, sources, include_dirs=["csrc", np.get_include()],
              depends=local_includes(sources),
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    for name, sources in KERNELS.items()
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "initializedcheck": DEBUG,
            # the sanitizer build keeps the release's C division, so that UBSan checks the
            # code that ships (tools/check_sanitizers.sh builds with both switches)
            "cdivision": not DEBUG or SANITIZE,
            "embedsignature": True,
        },
        force=DEBUG,  # regenerate C that an unchecked build left behind
    ),
    cmdclass={"build_ext": BuildExt},
)
