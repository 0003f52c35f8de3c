"""Facts about the build and the CPU, from csrc/runtime.c."""


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(fc_openmp_enabled())


def omp_max_threads():
    """OpenMP's default thread count (honours OMP_NUM_THREADS); 1 without OpenMP."""
    return fc_omp_max_threads()


def compiler():
    """The C compiler that built the kernels, e.g. 'gcc 12.2.0'."""
    return fc_compiler().decode()


def cpu_simd():
    """The widest SIMD instruction set this CPU supports, as fastcnn names it."""
    return fc_cpu_simd().decode()
