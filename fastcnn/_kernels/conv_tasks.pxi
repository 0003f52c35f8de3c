# What runs (included by conv.pyx): the task loops over OpenMP threads, each task calling the
# microkernels of csrc/conv.c on the operands of conv_operands.pxi, in the tiles and blocks
# that conv_plan.pxi chose.

# ------------------------------------------------------- forward and data gradient tiles

cdef void _tiles(const fc_conv_geom *g, const floating *x, const floating *wk, int kb,
                 const floating *bias, floating *y, bint chan) noexcept nogil:
    cdef unsigned csr = fc_denormals_off()
    if floating is float:
        if chan:
            fc_conv_ctiles_f32(g, x, wk, kb, bias, y)
        else:
            fc_conv_tiles_f32(g, x, wk, kb, bias, y)
    else:
        if chan:
            fc_conv_ctiles_f64(g, x, wk, kb, bias, y)
        else:
            fc_conv_tiles_f64(g, x, wk, kb, bias, y)
    fc_denormals_restore(csr)


cdef _conv_tasks(_Prepared prep, list phases, const floating *bias, floating *y,
                 Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg, Py_ssize_t row_step,
                 Py_ssize_t ldk, Py_ssize_t ldy_row, Py_ssize_t y_col_step, int tiles,
                 int n_threads, const floating[:, :, :, ::1] src=None, Py_ssize_t left=0):
    # For each image n and group g, and each phase (taps, w, offset, P, Q) of phases:
    # y[offset + n, g*Kg + k] (P rows, Q columns; channel pitch ldk, row pitch ldy_row,
    # column step y_col_step) = sum over the group's Cg prepared channels of the phase's
    # taps with the weights w (G*Kg, Cg, taps' rows, taps' columns) (the forward pass has one
    # phase, a strided data gradient one per stride phase), in the tiles _pick_tiles chose:
    # along output channels (fc_conv_ctiles), or along output positions, with row tiles
    # where the taps allow (TILES_ROWS).
    # One task per (image, group, channel block, row block), for every phase: no two tasks
    # share an output. With src (and prep holding no buffer), each task first prepares the
    # rows it reads of src (padded prep.top / left as _prepare would) into its thread's scratch,
    # once for all phases: for layers of one channel block (depthwise, few output channels)
    # no other task reads them, and the rows stay in cache instead of going to memory and
    # back as a padded copy of the whole input.
    cdef Py_ssize_t nph = len(phases), ph, P = 0, Q = 0, t, offset, P_ph, Q_ph, rr
    cdef Py_ssize_t srow = row_step // prep.row_pitch
    cdef Py_ssize_t tap_rows = 0    # (a loop below: np.max on a memoryview costs more)
    cdef Py_ssize_t[::1] tv
    cdef const floating[::1] wv
    cdef Py_ssize_t[:, ::1] row_taps
    # each phase's geometry, and where its weights and outputs are: (offset, P, weights)
    cdef unsigned char[::1] geo_bytes = np.zeros(nph * sizeof(fc_conv_geom), np.uint8)
    cdef fc_conv_geom *geo = <fc_conv_geom *>&geo_bytes[0]
    cdef Py_ssize_t[:, ::1] put = np.empty((nph, 3), np.intp)
    cdef bint chan = tiles == TILES_CHANNELS
    keep = []
    for ph in range(nph):
        P, Q = max(P, phases[ph][3]), max(Q, phases[ph][4])
    cdef Py_ssize_t lanes = fc_conv_lanes(floating is double)
    cdef Py_ssize_t cb = fc_conv_ct_block(floating is double) if chan else FC_KB
    cdef Py_ssize_t Kgp = (Kg + lanes - 1) // lanes * lanes if chan else Kg  # packed, per group
    for ph in range(nph):
        taps, w, offset, P_ph, Q_ph = phases[ph]
        rr = _row_reuse(taps, w.shape[2], row_step) if tiles == TILES_ROWS else 0
        if rr:
            # taps and weights column by column (tap s*rr + r), the order in which row tiles
            # sum: the tiles of positions that take the row blocks too short for row tiles
            # (and which blocks those are depends on the thread count) then sum alike
            taps = np.ascontiguousarray(taps.reshape(rr, -1).T).reshape(-1)
            w = w.transpose(0, 1, 3, 2)
            keep.append(taps)
        wpack = _pack(w, G, cb, lanes if chan else 1)
        keep.append(wpack)
        tv, wv = taps, wpack
        for t in range(tv.shape[0]):
            tap_rows = max(tap_rows, tv[t] // prep.row_pitch + 1)
        rt = None if rr else _row_taps(prep, tv, srow, P_ph, wv)  # (taps sorted by row)
        keep.append(rt)  # (geo points into it)
        if rt is not None:
            row_taps = rt
        geo[ph].C = Cg
        geo[ph].ntaps = tv.shape[0]
        geo[ph].tap = &tv[0]
        geo[ph].row_step = row_step
        geo[ph].cols = Q_ph
        geo[ph].ldk = ldk
        geo[ph].ldy_row = ldy_row
        geo[ph].y_col_step = y_col_step
        geo[ph].row_taps = &row_taps[0, 0] if rt is not None else NULL
        geo[ph].row_reuse = rr
        put[ph, 0], put[ph, 1], put[ph, 2] = offset, P_ph, <Py_ssize_t><size_t>&wv[0]
    cdef Py_ssize_t kblocks = (Kg + cb - 1) // cb
    cdef bint own = src is not None
    cdef Py_ssize_t rb = _task_rows(P, Q, own, N * G * kblocks, Cg * prep.rows * prep.row_pitch,
                                    n_threads)
    cdef Py_ssize_t rblocks = (P + rb - 1) // rb
    cdef Py_ssize_t ntasks = N * G * kblocks * rblocks, K = G * Kg
    cdef Py_ssize_t task, n, g, kblk, rblk, k0, p0, a0, rows
    cdef int kb
    # own rows: a task's output rows p0 .. p0+rb-1 read prepared rows p0*srow on, tap_rows
    # deep; every channel of the scratch holds the most a task reads
    cdef Py_ssize_t ldc_own = ((rb - 1) * srow + tap_rows) * prep.row_pitch
    cdef floating[:, ::1] scratch
    cdef const floating[::1] buf
    cdef const floating *x = NULL
    cdef const floating *xt
    cdef _Pad pad
    if own:
        pad = _pad_of(prep, src.shape[3], left)
        scratch = np.zeros((n_threads, Cg * ldc_own + FC_SLACK),
                           np.float32 if floating is float else np.float64)
    else:
        buf = prep.buffer
        x = &buf[0]
    for ph in range(nph):
        geo[ph].ldc = ldc_own if own else prep.plane
    for task in prange(ntasks, nogil=True, schedule="static", num_threads=n_threads):
        rblk = task % rblocks
        kblk = (task // rblocks) % kblocks
        g = (task // (rblocks * kblocks)) % G
        n = task // (rblocks * kblocks * G)
        k0 = g * Kg + kblk * cb
        kb = <int>min(cb, Kg - kblk * cb)
        p0 = rblk * rb
        if own:
            xt = &scratch[threadid(), 0]
            a0 = p0 * srow
            rows = min(prep.rows - a0, (min(rb, P - p0) - 1) * srow + tap_rows)
            _pad_planes(&pad, &src[n, g * Cg, 0, 0], Cg, &scratch[threadid(), 0], ldc_own, a0,
                        rows)
        else:
            xt = x + (n * G * Cg + g * Cg) * prep.plane + p0 * row_step
        for ph in range(nph):
            if p0 < put[ph, 1]:
                _task_tiles(&geo[ph], p0, min(rb, put[ph, 1] - p0), xt,
                            <const floating *><size_t>put[ph, 2]
                            + (g * Kgp + kblk * cb) * Cg * geo[ph].ntaps,
                            kb, bias + k0 if bias != NULL else NULL,
                            y + put[ph, 0] + (n * K + k0) * ldk + p0 * ldy_row, chan)


cdef void _task_tiles(const fc_conv_geom *shared, Py_ssize_t p0, Py_ssize_t rows,
                      const floating *x, const floating *wk, int kb, const floating *bias,
                      floating *y, bint chan) noexcept nogil:
    # output rows p0 .. p0 + rows - 1
    cdef fc_conv_geom g = shared[0]
    g.rows = rows
    if g.row_taps != NULL:
        g.row_taps = g.row_taps + 2 * p0
    _tiles(&g, x, wk, kb, bias, y, chan)


# ------------------------------------------------------------------------ 1x1 in panels

cdef void _panel_tasks(const floating[:, :, :, ::1] src, const floating[::1] wpack,
                       const floating *bias, floating *y, Py_ssize_t G, Py_ssize_t Kg,
                       Py_ssize_t PW, int n_threads):
    # y[n, g*Kg + k] (HW pixels) = sum over the group's Cg channels of src[n, g*Cg + c]; each
    # task copies its panels, one at a time, into its thread's scratch ([Cg][PW]).
    cdef Py_ssize_t N = src.shape[0], Cg = src.shape[1] // G, HW = src.shape[2] * src.shape[3]
    cdef Py_ssize_t panels = (HW + PW - 1) // PW
    cdef Py_ssize_t runs = (panels + PANEL_TASK - 1) // PANEL_TASK, K = G * Kg
    cdef Py_ssize_t task, ng, r
    cdef Py_ssize_t tap0 = 0
    cdef fc_conv_geom geo
    cdef floating[:, ::1] scratch = np.empty((n_threads, Cg * PW),
                                             np.float32 if floating is float else np.float64)
    cdef const floating *x = &src[0, 0, 0, 0]
    geo.C = Cg
    geo.ntaps = 1
    geo.tap = &tap0
    geo.ldc = HW
    geo.row_step = HW
    geo.rows = 1
    geo.cols = HW
    geo.ldk = HW
    geo.ldy_row = HW
    geo.y_col_step = 1
    geo.row_taps = NULL
    geo.row_reuse = 0
    for task in prange(N * G * runs, nogil=True, schedule="static", num_threads=n_threads):
        r = task % runs
        ng = task // runs         # image n = ng // G, group ng % G: its channels follow
        _panel_run(&geo, x + ng * Cg * HW, &wpack[(ng % G) * Kg * Cg], <int>Kg,
                   bias + (ng % G) * Kg if bias != NULL else NULL,
                   y + ((ng // G) * K + (ng % G) * Kg) * HW, r * PANEL_TASK,
                   min(panels, (r + 1) * PANEL_TASK), &scratch[threadid(), 0])


cdef void _panel_run(const fc_conv_geom *g, const floating *x, const floating *wk, int K,
                     const floating *bias, floating *y, Py_ssize_t p_begin,
                     Py_ssize_t p_end, floating *scratch) noexcept nogil:
    cdef unsigned csr = fc_denormals_off()
    if floating is float:
        fc_conv_panels_f32(g, x, wk, K, bias, y, p_begin, p_end, scratch)
    else:
        fc_conv_panels_f64(g, x, wk, K, bias, y, p_begin, p_end, scratch)
    fc_denormals_restore(csr)


# ------------------------------------------------ weight gradient along output columns

cdef fc_conv_geom _wgrad_geom(_Prepared prep, const Py_ssize_t[::1] taps, Py_ssize_t C,
                              Py_ssize_t ntaps, Py_ssize_t sh, Py_ssize_t Q):
    """What both weight-gradient kernels share of their geometry: x's channels, taps and
    pitches and the output columns; ldk, ldy_row and the image fields are the caller's."""
    cdef fc_conv_geom geo
    geo.C = C
    geo.ntaps = ntaps
    geo.tap = &taps[0]
    geo.ldc = prep.plane
    geo.row_step = sh * prep.row_pitch
    geo.cols = Q
    geo.y_col_step = 1
    geo.row_taps = NULL
    geo.row_reuse = 0
    geo.ldk, geo.ldy_row, geo.images, geo.dy_image, geo.x_image = 0, 0, 1, 0, 0
    return geo


cdef void _wgrad_task(const fc_conv_geom *shared, const floating *gy, const floating *x,
                      floating *dw, int kb, Py_ssize_t first_image, Py_ssize_t N,
                      Py_ssize_t gy_image, Py_ssize_t x_image, Py_ssize_t P, Py_ssize_t Q,
                      Py_ssize_t rb, Py_ssize_t m, floating *dy, const _Pad *pad,
                      floating *xs) noexcept nogil:
    # dw[kb, C, taps] += the sums over images first_image, first_image + NSLOT, ... < N,
    # taken m images at a time (so that a tile's lanes are added up once per m images).
    # Their kb output-gradient planes are first copied into dy (this thread's scratch), in
    # rows padded with zeros to whole vectors (ldy_row) as the microkernel needs. With pad,
    # x is the input itself (image pitch x_image), and the task first pads each of its
    # images' g.C channels into xs (this thread's scratch for m images) as _prepare would:
    # for layers of one channel block per group (depthwise) no other task of the slot reads
    # them, and they stay in cache instead of going to memory and back as a padded copy of
    # the whole input.
    cdef fc_conv_geom g = shared[0]
    cdef Py_ssize_t n, nn, p0, k, p, j, Qp = g.ldy_row, plane = P * Qp
    cdef const floating *xn
    cdef unsigned csr
    memset(dy, 0, m * kb * plane * sizeof(floating))
    g.dy_image = kb * plane
    g.x_image = g.C * g.ldc if pad != NULL else NSLOT * x_image
    cdef bint fetch = _prefetch_next(m, kb, P, Q, g.C * pad.H * pad.W if pad != NULL else 0,
                                     sizeof(floating))
    csr = fc_denormals_off()
    n = first_image
    while n < N:
        g.images = min(m, (N - n + NSLOT - 1) // NSLOT)
        for j in range(g.images):
            for k in range(kb):
                for p in range(P):
                    memcpy(dy + (j * kb + k) * plane + p * Qp,
                           gy + (n + j * NSLOT) * gy_image + (k * P + p) * Q,
                           Q * sizeof(floating))
            if pad != NULL:
                _pad_planes(pad, x + (n + j * NSLOT) * x_image, g.C, xs + j * g.x_image, g.ldc,
                            0, pad.rows)
        # the next round's images, which lie NSLOT images apart, out of the hardware
        # prefetchers' reach (where _prefetch_next lets it)
        nn = n + g.images * NSLOT if fetch else N
        for j in range(min(m, (N - nn + NSLOT - 1) // NSLOT) if nn < N else 0):
            fc_prefetch(gy + (nn + j * NSLOT) * gy_image, kb * P * Q * sizeof(floating))
            if pad != NULL:
                fc_prefetch(x + (nn + j * NSLOT) * x_image,
                            g.C * pad.H * pad.W * sizeof(floating))
        xn = xs if pad != NULL else x + n * x_image
        p0 = 0
        while p0 < P:
            g.rows = min(rb, P - p0)
            if floating is float:
                fc_conv_wgrad_f32(&g, dy + p0 * Qp, xn + p0 * g.row_step, kb, dw)
            else:
                fc_conv_wgrad_f64(&g, dy + p0 * Qp, xn + p0 * g.row_step, kb, dw)
            p0 = p0 + rb
        n = n + g.images * NSLOT
    fc_denormals_restore(csr)


cdef _backward_weight_rows(const floating[:, :, :, ::1] gy__nkpq,
                           const floating[:, :, :, ::1] x__nchw, _Prepared prep,
                           const Py_ssize_t[::1] taps, floating[:, :, :, ::1] gw__kcrs, gw,
                           Py_ssize_t groups, Py_ssize_t sh, Py_ssize_t pl, bint by_task,
                           int n_threads):
    """The weight gradient, zero on entry, vectorised along output columns (fc_conv_wgrad),
    into gw__kcrs (gw: the same array, as an ndarray). Tasks = (slot, group, block of output
    channels); slot s sums images s, s + NSLOT, ... (_wgrad_task): slot 0 straight into gw,
    the others into partial gradients of their own, added at the end in a fixed order, so
    that the result does not depend on the thread count. x is prep's buffer, or with by_task
    x__nchw itself, which each task pads image by image."""
    cdef Py_ssize_t N = x__nchw.shape[0], C = x__nchw.shape[1]
    cdef Py_ssize_t K = gw__kcrs.shape[0], Cg = gw__kcrs.shape[1]
    cdef Py_ssize_t R = gw__kcrs.shape[2], S = gw__kcrs.shape[3]
    cdef Py_ssize_t P = gy__nkpq.shape[2], Q = gy__nkpq.shape[3]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t lanes = fc_conv_lanes(floating is double)
    cdef Py_ssize_t WK = fc_conv_wgrad_kb()
    cdef const floating[::1] buf
    cdef const floating *x = &x__nchw[0, 0, 0, 0]
    if not by_task:
        buf = prep.buffer
        x = &buf[0]
    cdef const floating *gy = &gy__nkpq[0, 0, 0, 0]
    cdef Py_ssize_t slots = min(N, NSLOT)
    partial_arr = np.zeros((slots - 1,) + gw.shape, dtype=gw.dtype)
    cdef floating[::1] partial = partial_arr.reshape(-1) if slots > 1 else gw.reshape(-1)
    cdef floating *out0 = &gw__kcrs[0, 0, 0, 0]
    cdef Py_ssize_t Qp = (Q + lanes - 1) // lanes * lanes
    cdef Py_ssize_t rb, m
    rb, m = _wgrad_blocks(N, P, Qp)
    cdef floating[:, ::1] scratch = np.empty((n_threads, m * WK * P * Qp), gw.dtype)
    cdef floating *out1 = &partial[0]
    # blocks of near-equal size (6 channels: 3 + 3, not 4 + 2; see fc_conv_wgrad)
    cdef Py_ssize_t kblocks = (Kg + WK - 1) // WK
    cdef Py_ssize_t task, slot, g, kblk, k0, kg0
    cdef int kb
    cdef fc_conv_geom geo = _wgrad_geom(prep, taps, Cg, R * S, sh, Q)
    geo.ldk = P * Qp
    geo.ldy_row = Qp
    cdef _Pad pad
    cdef floating[:, ::1] own_scratch
    # x's plane pitch: the input's own, or the prepared copy's
    cdef Py_ssize_t x_plane = x__nchw.shape[2] * x__nchw.shape[3] if by_task else prep.plane
    if by_task:
        pad = _pad_of(prep, x__nchw.shape[3], pl)
        own_scratch = np.zeros((n_threads, m * Cg * prep.plane + FC_SLACK), gw.dtype)
    for task in prange(slots * groups * kblocks, nogil=True, schedule="static",
                       num_threads=n_threads):
        kblk = task % kblocks
        g = (task // kblocks) % groups
        slot = task // (kblocks * groups)
        kg0 = Kg * kblk // kblocks
        k0 = g * Kg + kg0
        kb = <int>(Kg * (kblk + 1) // kblocks - kg0)
        _wgrad_task(&geo, gy + k0 * P * Q,
                    x + g * Cg * x_plane, (out0 if slot == 0 else out1) + k0 * Cg * R * S,
                    kb, slot, N, K * P * Q, C * x_plane, P, Q, rb, m, &scratch[threadid(), 0],
                    &pad if by_task else NULL,
                    &own_scratch[threadid(), 0] if by_task else NULL)
    if slots > 1:
        gw += partial_arr[0]


# ------------------------------------------------ weight gradient along output channels

cdef void _wgcl_task(const fc_conv_geom *shared, const floating *gy, const floating *x,
                     floating *dwt, Py_ssize_t K, Py_ssize_t Kp, int kvmax, Py_ssize_t lanes,
                     Py_ssize_t share0, Py_ssize_t share1, Py_ssize_t first_image,
                     Py_ssize_t N, Py_ssize_t x_image, Py_ssize_t P, Py_ssize_t Q,
                     Py_ssize_t rb, Py_ssize_t m, floating *dyt) noexcept nogil:
    # The task's share share0 .. share1 - 1 of the pairs, every output channel, over the
    # images first_image, first_image + NSLOT, ... < N, in blocks of m images x rb rows: each
    # block's output gradient is first transposed into dyt (this thread's scratch: for each
    # block of kvmax*lanes channels, pixels x channels, zeros past channel K), and then every
    # block of channels sums the pairs over it, while the block's x stays in L2 (rather than
    # a task per block of channels, each reading all of x). A channel
    # block's tiles take nu pairs each (fewer vectors, more pairs), so its pairs start at the
    # share's ends rounded up to a multiple of nu: the next share starts where this one ends,
    # and only the last share's last tile runs past the pairs (into the partial's spare rows).
    cdef fc_conv_geom g = shared[0]
    cdef Py_ssize_t KB = kvmax * lanes, kblocks = (Kp + KB - 1) // KB, PQ = P * Q
    cdef Py_ssize_t n, p0, j, k, kblk, pix, npix, block, nu, u_begin, u_end
    cdef const floating *src
    cdef floating *dst
    cdef unsigned csr = fc_denormals_off()
    cdef int kv
    g.ldk = KB
    g.x_image = NSLOT * x_image
    n = first_image
    while n < N:
        g.images = min(m, (N - n + NSLOT - 1) // NSLOT)
        p0 = 0
        while p0 < P:
            g.rows = min(rb, P - p0)
            npix = g.rows * Q
            g.dy_image = npix * KB
            block = g.images * g.dy_image     # one block of channels' transposed gradient
            for j in range(g.images):
                for k in range(Kp):
                    dst = dyt + k // KB * block + j * g.dy_image + k % KB
                    if k < K:
                        src = gy + ((n + j * NSLOT) * K + k) * PQ + p0 * Q
                        for pix in range(npix):
                            dst[pix * KB] = src[pix]
                    else:
                        for pix in range(npix):
                            dst[pix * KB] = 0
            for kblk in range(kblocks):
                kv = <int>min(kvmax, (Kp - kblk * KB) // lanes)
                nu = fc_conv_wgcl_nu(kv)
                u_begin = (share0 + nu - 1) // nu * nu
                u_end = (share1 + nu - 1) // nu * nu
                if u_begin >= u_end:
                    continue
                if floating is float:
                    fc_conv_wgcl_f32(&g, dyt + kblk * block, x + n * x_image + p0 * g.row_step,
                                     kv, u_begin, u_end, dwt + kblk * KB)
                else:
                    fc_conv_wgcl_f64(&g, dyt + kblk * block, x + n * x_image + p0 * g.row_step,
                                     kv, u_begin, u_end, dwt + kblk * KB)
            p0 = p0 + rb
        n = n + g.images * NSLOT
    fc_denormals_restore(csr)


cdef _backward_weight_cl(const floating *gy, const floating *x, _Prepared prep,
                         const Py_ssize_t[::1] taps, Py_ssize_t N, Py_ssize_t K, Py_ssize_t C,
                         Py_ssize_t R, Py_ssize_t S, Py_ssize_t P, Py_ssize_t Q, Py_ssize_t sh,
                         Py_ssize_t lanes, int n_threads, floating *gw):
    """The weight gradient (K, C, R, S) of an ungrouped convolution, vectorised along output
    channels (fc_conv_wgcl), into gw (K x C*R*S, contiguous). Slot s sums images s,
    s + NSLOT, ... into its own partial [pairs][channels]; the partials are added in a fixed
    order, so the result does not depend on the thread count. Tasks = (slot, share of the
    pairs), each for every output channel."""
    cdef Py_ssize_t nu_all = C * R * S, Kp = (K + lanes - 1) // lanes * lanes
    cdef int kvmax = fc_conv_wgcl_kv()
    cdef Py_ssize_t KBmax = kvmax * lanes, kblocks = (Kp + KBmax - 1) // KBmax
    cdef Py_ssize_t slots = min(N, NSLOT)
    cdef Py_ssize_t rb, m
    rb, m = _wgcl_blocks(N, P, Q)
    cdef Py_ssize_t ranges = _wgcl_shares(nu_all, slots, n_threads)
    partial_arr = np.zeros((slots, nu_all + FC_WCL_NU_MAX, Kp),
                           np.float32 if floating is float else np.float64)
    cdef floating[:, :, ::1] partial = partial_arr
    cdef floating[:, ::1] scratch = np.empty(
        (n_threads, max(WGCL_PIXELS, Q) * kblocks * KBmax), partial_arr.dtype)
    cdef Py_ssize_t task, slot, r
    cdef fc_conv_geom geo = _wgrad_geom(prep, taps, C, R * S, sh, Q)
    geo.ldy_row = Kp
    for task in prange(slots * ranges, nogil=True, schedule="static", num_threads=n_threads):
        r = task % ranges
        slot = task // ranges
        _wgcl_task(&geo, gy, x, &partial[slot, 0, 0], K, Kp, kvmax, lanes,
                   nu_all * r // ranges, nu_all * (r + 1) // ranges, slot, N, C * prep.plane,
                   P, Q, rb, m, &scratch[threadid(), 0])
    _add_transposed(partial, K, nu_all, gw)


cdef void _add_transposed(const floating[:, :, ::1] partial, Py_ssize_t K, Py_ssize_t U,
                          floating *out) noexcept:
    # out[k*U + u] = partial[0, u, k] + partial[1, u, k] + ... (in that order), in blocks of 16
    # pairs, so that both sides move along whole cache lines (NumPy's sum and a transposed
    # copy would cross them)
    cdef Py_ssize_t u0, u, k, slot
    cdef floating acc
    for u0 in range(0, U, 16):
        for k in range(K):
            for u in range(u0, min(U, u0 + 16)):
                acc = partial[0, u, k]
                for slot in range(1, partial.shape[0]):
                    acc = acc + partial[slot, u, k]
                out[k * U + u] = acc
