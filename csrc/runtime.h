/* Build and CPU facts the kernels and build_info() need. Plain C, no Python.h. */
#ifndef FASTCNN_RUNTIME_H
#define FASTCNN_RUNTIME_H

/* 1 when the kernels were compiled with OpenMP, else 0 (they then run serially). */
int fc_openmp_enabled(void);

/* omp_get_max_threads() with OpenMP (honours OMP_NUM_THREADS), else 1. */
int fc_omp_max_threads(void);

/* Compiler name and version, e.g. "gcc 12.2.0". Static storage. */
const char *fc_compiler(void);

/* The widest SIMD level this CPU supports that fastcnn knows: "avx512f", "avx2+fma",
   "sse2" or "generic" (non-x86). Static storage. */
const char *fc_cpu_simd(void);

#endif
