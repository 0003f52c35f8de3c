/* Register-blocked direct convolution microkernels. Plain C, no Python.h.
 *
 * `fc_conv_tiles_*` serves the forward pass and the data gradient (as does `fc_conv_ctiles_*`,
 * the same sums vectorised along output channels, below): it computes a block of output rows
 * for up to FC_KB output channels as
 *
 *     y[kb, i, j] = bias[kb] + sum_{c < C, t < ntaps} w[c, t, kb] * x[c*ldc + i*row_step + j + tap[t]]
 *
 * over a prepared input x (zero-padded, and for column stride > 1 split into column phases, so
 * that consecutive output columns read consecutive input elements). Each tile is up to FC_KB
 * output channels x some SIMD vectors of output positions, held in accumulator registers for
 * the whole c, t sum (Zhang, Franchetti and Low, ICML 2018): 12 accumulators with AVX2's 16
 * registers, 24 with AVX-512's 32, with more vectors when there are fewer output channels.
 * Where it wastes fewer lanes than partial tiles per row, tiles run on across row ends (x's
 * offset i*row_step + j is one running index); the lanes that fall in the row_step - cols
 * columns between rows are computed and dropped. Reads may run up to FC_SLACK elements past
 * the last output: the prepared buffers carry that much slack at their end.
 *
 * `fc_conv_wgrad_*` is the weight gradient, vectorised along output columns:
 *
 *     dw[kb, c, t] += sum_{n, i, j} dy[n*dy_image + kb*ldk + i*ldy_row + j]
 *                                  * x[n*x_image + c*ldc + i*row_step + j + tap[t]]
 *
 * for up to FC_WK_MAX output channels x FC_WU_MAX (channel, tap) pairs at a time, fewer pairs
 * the more channels (the tile suits each instruction set's register count: fc_conv_wgrad_kb
 * tells the caller how many output channels to hand over at once), summed over a block of rows of one or more images;
 * a tile adds up its vector lanes once, after all of them, so small images should come
 * several at a time. dy rows must be padded with zeros to ldy_row, a multiple of the vector
 * length (fc_conv_lanes), so that whole vectors can be read.
 *
 * Each routine exists for float and double, compiled for AVX-512, for AVX2+FMA (chosen at
 * run time from the CPU's features) and for the baseline instruction set (any compiler
 * vectorises it).
 */
#ifndef FASTCNN_CONV_H
#define FASTCNN_CONV_H

#include <stddef.h>

#define FC_KB 6     /* output channels per forward tile */
#define FC_PREFETCH_C 4 /* channels ahead that a forward tile prefetches its input (tuned on
                          large 3x3 layers: nearer comes too late, farther gains nothing) */
#define FC_TILE_NV_MAX 8 /* vectors of output positions per forward tile, at most */
#define FC_SLACK 128 /* elements a tile may read past the end of its input */
#define FC_WK_MAX 6 /* output channels per weight-gradient tile, at most */
#define FC_WU_MAX 12 /* (channel, tap) pairs per weight-gradient tile, at most (4 with 3 or
                        more output channels, FC_WU_MAX / kb with fewer) */
#define FC_WCL_NU_MAX 8 /* pairs per channels-last weight-gradient tile, at most */
#define FC_WCL_KV_MAX 4 /* output-channel vectors per channels-last tile, at most */
#define FC_CT_KV_MAX 2 /* output-channel vectors per channel tile */
#define FC_CT_P_MAX 12 /* output positions per channel tile, at most */

typedef struct {
    ptrdiff_t C;          /* input channels summed over */
    ptrdiff_t ntaps;      /* kernel taps (R*S, or fewer for one phase of a strided gradient) */
    const ptrdiff_t *tap; /* element offset of each tap from the window origin */
    ptrdiff_t ldc;        /* channel pitch of x */
    ptrdiff_t row_step;   /* x offset between consecutive output rows */
    ptrdiff_t rows, cols; /* output rows and columns to compute */
    ptrdiff_t ldk;        /* y channel pitch */
    ptrdiff_t ldy_row;    /* y row pitch */
    ptrdiff_t y_col_step; /* y element step between output columns (1, or the stride) */
    ptrdiff_t images;     /* weight gradient only: images summed over, each `rows` rows, */
    ptrdiff_t dy_image;   /* dy's and x's pitch between them (the forward ignores these) */
    ptrdiff_t x_image;
    const ptrdiff_t *row_taps; /* forward tiles only: NULL, or for each output row i the taps
                                  row_taps[2i] .. row_taps[2i+1] - 1 that read anything but
                                  padding, the only ones summed where tiles keep to a row */
    ptrdiff_t row_reuse;  /* forward tiles only: 0, or RR where the taps are ntaps/RR
                             columns of RR, tap r of column s at tap[s*RR] + r*row_step:
                             one output channel's tiles may then reuse each input row for
                             RR output rows (conv_rtiles.inc) */
} fc_conv_geom;

/* Which instruction set the routines below use: 2 = AVX-512, 1 = AVX2+FMA, 0 = baseline
   (a level the CPU lacks falls back to the best it has). */
int fc_conv_select(int want_simd);
const char *fc_conv_path(void);

/* wk: packed weights [C][ntaps][kb]; bias: kb values (NULL: none). */
void fc_conv_tiles_f32(const fc_conv_geom *g, const float *x, const float *wk, int kb,
                       const float *bias, float *y);
void fc_conv_tiles_f64(const fc_conv_geom *g, const double *x, const double *wk, int kb,
                       const double *bias, double *y);

/* The same sums as fc_conv_tiles for kn <= fc_conv_ct_block output channels, vectorised along
   them (see conv_ctiles.inc): wk [C][ntaps][kv*VL] with kv = the vectors kn needs (zeros past
   kn); every tap summed (row_taps ignored); bias: kn values or NULL. */
int fc_conv_ct_block(int double_precision); /* output channels per channel tile */
void fc_conv_ctiles_f32(const fc_conv_geom *g, const float *x, const float *wk, int kn,
                        const float *bias, float *y);
void fc_conv_ctiles_f64(const fc_conv_geom *g, const double *x, const double *wk, int kn,
                        const double *bias, double *y);

/* 1x1 convolution (stride 1, no padding) of x's C = g->C planes of g->cols pixels (g->ldc
   apart; g->rows = 1, one tap at 0) in pixel panels of fc_conv_panel_width elements: panels
   p_begin .. p_end - 1, each copied into scratch (C * panel width elements, one thread's
   own) and then summed for all K output channels (wk as for fc_conv_tiles), into y (channel
   pitch ldk). */
int fc_conv_panel_width(int double_precision);
void fc_conv_panels_f32(const fc_conv_geom *g, const float *x, const float *wk, int K,
                        const float *bias, float *y, ptrdiff_t p_begin, ptrdiff_t p_end,
                        float *scratch);
void fc_conv_panels_f64(const fc_conv_geom *g, const double *x, const double *wk, int K,
                        const double *bias, double *y, ptrdiff_t p_begin, ptrdiff_t p_end,
                        double *scratch);

/* dw: [kb][C][ntaps], added into. rows/cols/ldy_row/ldk of g describe dy. */
int fc_conv_lanes(int double_precision);
int fc_conv_wgrad_kb(void);
void fc_conv_wgrad_f32(const fc_conv_geom *g, const float *dy, const float *x, int kb,
                       float *dw);
void fc_conv_wgrad_f64(const fc_conv_geom *g, const double *dy, const double *x, int kb,
                       double *dw);

/* Weight gradient vectorised along output channels (see conv_wgcl.inc): dyt is the output
   gradient transposed to pixels x channels (pixel pitch ldk, image pitch dy_image; rows, cols,
   images, x_image, row_step, ldc, ntaps, tap as above), dwt pairs x channels (row pitch
   ldy_row), added into; kv vectors of output channels; pairs u_begin .. u_end - 1, in tiles
   of fc_conv_wgcl_nu(kv) (u_begin a multiple of it; dwt has rows up to the next multiple
   past C*ntaps). */
int fc_conv_wgcl_kv(void); /* channel vectors per tile this path wants, at most */
int fc_conv_wgcl_nu(int kv);
void fc_conv_wgcl_f32(const fc_conv_geom *g, const float *dyt, const float *x, int kv,
                      ptrdiff_t u_begin, ptrdiff_t u_end, float *dwt);
void fc_conv_wgcl_f64(const fc_conv_geom *g, const double *dyt, const double *x, int kv,
                      ptrdiff_t u_begin, ptrdiff_t u_end, double *dwt);

/* One prepared plane: dst[a][f][b] = src[a - top][b*phases + f - left] (src H x W), zero
   outside src, for rows a < rows, column phases f < phases of phase_len elements each. */
void fc_pad_plane_f32(const float *src, float *dst, ptrdiff_t H, ptrdiff_t W, ptrdiff_t top,
                      ptrdiff_t left, ptrdiff_t rows, ptrdiff_t phases, ptrdiff_t phase_len);
void fc_pad_plane_f64(const double *src, double *dst, ptrdiff_t H, ptrdiff_t W, ptrdiff_t top,
                      ptrdiff_t left, ptrdiff_t rows, ptrdiff_t phases, ptrdiff_t phase_len);

/* Start fetching the cache lines of p .. p + bytes - 1, without waiting for them. */
void fc_prefetch(const void *p, ptrdiff_t bytes);

/* Flush denormals to zero (FTZ/DAZ) for the calling thread; returns the state to restore. */
unsigned fc_denormals_off(void);
void fc_denormals_restore(unsigned state);

#endif
