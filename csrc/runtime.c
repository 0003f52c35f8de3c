#include "runtime.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int fc_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fc_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

#define FC_STR2(x) #x
#define FC_STR(x) FC_STR2(x)

const char *fc_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " FC_STR(__GNUC__) "." FC_STR(__GNUC_MINOR__) "." FC_STR(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
    return "msvc " FC_STR(_MSC_VER);
#else
    return "unknown";
#endif
}

const char *fc_cpu_simd(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "avx512f";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "avx2+fma";
    return "sse2";
#else
    return "generic";
#endif
}
