cdef extern from "conv.h" nogil:
    enum:
        FC_KB
        FC_SLACK
    ctypedef struct fc_conv_geom:
        Py_ssize_t C
        Py_ssize_t ntaps
        const Py_ssize_t *tap
        Py_ssize_t ldc
        Py_ssize_t row_step
        Py_ssize_t rows
        Py_ssize_t cols
        Py_ssize_t ldk
        Py_ssize_t ldy_row
        Py_ssize_t y_col_step
        Py_ssize_t images
        Py_ssize_t dy_image
        Py_ssize_t x_image
        const Py_ssize_t *row_taps
        Py_ssize_t row_reuse
    int fc_conv_select(int want_simd)
    int fc_conv_lanes(int double_precision)
    int fc_conv_wgrad_kb()
    int fc_conv_wgcl_kv()
    int fc_conv_wgcl_nu(int kv)
    enum:
        FC_WCL_KV_MAX
        FC_WCL_NU_MAX
    void fc_conv_wgcl_f32(const fc_conv_geom *g, const float *dyt, const float *x, int kv,
                          Py_ssize_t u_begin, Py_ssize_t u_end, float *dwt)
    void fc_conv_wgcl_f64(const fc_conv_geom *g, const double *dyt, const double *x, int kv,
                          Py_ssize_t u_begin, Py_ssize_t u_end, double *dwt)
    const char *fc_conv_path()
    void fc_conv_tiles_f32(const fc_conv_geom *g, const float *x, const float *wk, int kb,
                           const float *bias, float *y)
    void fc_conv_tiles_f64(const fc_conv_geom *g, const double *x, const double *wk, int kb,
                           const double *bias, double *y)
    int fc_conv_ct_block(int double_precision)
    void fc_conv_ctiles_f32(const fc_conv_geom *g, const float *x, const float *wk, int kn,
                            const float *bias, float *y)
    void fc_conv_ctiles_f64(const fc_conv_geom *g, const double *x, const double *wk, int kn,
                            const double *bias, double *y)
    int fc_conv_panel_width(int double_precision)
    void fc_conv_panels_f32(const fc_conv_geom *g, const float *x, const float *wk, int K,
                            const float *bias, float *y, Py_ssize_t p_begin, Py_ssize_t p_end,
                            float *scratch)
    void fc_conv_panels_f64(const fc_conv_geom *g, const double *x, const double *wk, int K,
                            const double *bias, double *y, Py_ssize_t p_begin,
                            Py_ssize_t p_end, double *scratch)
    void fc_conv_wgrad_f32(const fc_conv_geom *g, const float *dy, const float *x, int kb,
                           float *dw)
    void fc_conv_wgrad_f64(const fc_conv_geom *g, const double *dy, const double *x, int kb,
                           double *dw)
    void fc_pad_plane_f32(const float *src, float *dst, Py_ssize_t H, Py_ssize_t W,
                          Py_ssize_t top, Py_ssize_t left, Py_ssize_t rows, Py_ssize_t phases,
                          Py_ssize_t phase_len)
    void fc_pad_plane_f64(const double *src, double *dst, Py_ssize_t H, Py_ssize_t W,
                          Py_ssize_t top, Py_ssize_t left, Py_ssize_t rows, Py_ssize_t phases,
                          Py_ssize_t phase_len)
    void fc_prefetch(const void *p, Py_ssize_t nbytes)
    unsigned fc_denormals_off()
    void fc_denormals_restore(unsigned state)
