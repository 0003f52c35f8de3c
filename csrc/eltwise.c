/* See eltwise.h. */
#include "eltwise.h"

#include <stdint.h>
#include <string.h>

/* Both keep a value's bits where it passes (an AND with 0 or all ones): GCC 12 did not
   vectorise the plain selects for every type. y > 0 or NaN exactly where x was, so the
   backward's mask comes from relu's output. */
#define RELU(T, UT, SUFFIX)                                                                \
    void fc_relu_forward_##SUFFIX(const T *x, T *y, ptrdiff_t n)                           \
    {                                                                                      \
        ptrdiff_t i;                                                                       \
        for (i = 0; i < n; i++) {                                                          \
            UT bits;                                                                       \
            memcpy(&bits, x + i, sizeof bits);                                             \
            bits &= (UT)0 - (UT)!(x[i] <= 0);                                              \
            memcpy(y + i, &bits, sizeof bits);                                             \
        }                                                                                  \
    }                                                                                      \
    void fc_relu_backward_##SUFFIX(const T *g, const T *y, T *gx, ptrdiff_t n)             \
    {                                                                                      \
        ptrdiff_t i;                                                                       \
        for (i = 0; i < n; i++) {                                                          \
            UT bits;                                                                       \
            memcpy(&bits, g + i, sizeof bits);                                             \
            bits &= (UT)0 - (UT)!(y[i] <= 0);                                              \
            memcpy(gx + i, &bits, sizeof bits);                                            \
        }                                                                                  \
    }

RELU(float, uint32_t, f32)
RELU(double, uint64_t, f64)
