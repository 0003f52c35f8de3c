/* See eltwise.h. */
#include "eltwise.h"

#include <stdint.h>
#include <string.h>

/* Both keep a value's bits where alive (an AND with 0 or all ones): GCC 12 did not vectorise
   the plain selects for every type, and those loops ran 10-25x slower. */
#define RELU(T, UT, SUFFIX)                                                                \
    void fc_relu_forward_##SUFFIX(const T *x, T *y, unsigned char *alive, ptrdiff_t n)     \
    {                                                                                      \
        ptrdiff_t i;                                                                       \
        for (i = 0; i < n; i++) {                                                          \
            const UT a = !(x[i] <= 0);                                                     \
            UT bits;                                                                       \
            memcpy(&bits, x + i, sizeof bits);                                             \
            bits &= (UT)0 - a;                                                             \
            memcpy(y + i, &bits, sizeof bits);                                             \
            alive[i] = (unsigned char)a;                                                   \
        }                                                                                  \
    }                                                                                      \
    void fc_relu_backward_##SUFFIX(const T *g, const unsigned char *alive, T *gx,          \
                                   ptrdiff_t n)                                            \
    {                                                                                      \
        ptrdiff_t i;                                                                       \
        for (i = 0; i < n; i++) {                                                          \
            UT bits;                                                                       \
            memcpy(&bits, g + i, sizeof bits);                                             \
            bits &= (UT)0 - (UT)(alive[i] != 0);                                           \
            memcpy(gx + i, &bits, sizeof bits);                                            \
        }                                                                                  \
    }

RELU(float, uint32_t, f32)
RELU(double, uint64_t, f64)
