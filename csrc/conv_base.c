/* conv_kernel.inc for the baseline instruction set (any CPU): 16-byte vectors, SSE2 on
 * x86-64, NEON on arm64. (32-byte vectors emulated in pairs of SSE registers needed twice the
 * registers there are: every accumulator lived on the stack.) */
#include "conv_isa.h"

#define VBYTES 16
#define ISA base
#define TILE_NV(KB) TILE_NV_16(KB) /* of 16 registers (SSE2; NEON has 32) */
#define WGRAD_K 4 /* 8 accumulators */
#define WGRAD_U 2
#define WGCL_ACC 10 /* + up to 2 channel vectors + 1 broadcast */
#define CT_ACC 12 /* + 2 weight vectors + 1 broadcast */
#include "conv_types.inc"
