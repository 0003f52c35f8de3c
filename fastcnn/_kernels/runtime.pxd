cdef extern from "runtime.h" nogil:
    int fc_openmp_enabled()
    int fc_omp_max_threads()
    const char *fc_compiler()
    const char *fc_cpu_simd()
