# How each convolution pass is chosen and cut into tasks (included by conv.pyx): the tuning
# constants, the choice a caller may force (`algorithm`, for tests and benchmarks), and the
# shape rules that choose otherwise. Nothing here touches the arrays' elements: the loops
# that do are in conv_tasks.pxi.

# ------------------------------------------------------------------------ tuning constants

cdef Py_ssize_t TILE_PIXELS = 512   # output pixels per forward task (rows x columns)
cdef Py_ssize_t WGRAD_PIXELS = 1024 # output-gradient pixels per weight-gradient row block
cdef Py_ssize_t PANEL_TASK = 4     # pixel panels per 1x1 task
cdef Py_ssize_t NSLOT = 2          # weight-gradient partial sums: slot s takes images s + k*NSLOT
cdef Py_ssize_t OWN_PLANE_ELEMENTS = 16384  # a task's padded rows of all its channels, at most,
                                            # for it to take whole images (_task_rows)
cdef Py_ssize_t PREFETCH_BYTES = 1 << 18  # a weight-gradient task's next round, at most
cdef Py_ssize_t WGCL_PIXELS = 256   # pixels per channels-last weight-gradient block


# ----------------------------------------------------------------- what a caller may force

# Each choice's options; an option's index is its code below, and "auto" (0) leaves the
# choice to the shape.
ALGORITHMS = {
    # forward and data-gradient tiles: along output positions (fc_conv_tiles), the same with
    # row tiles for one output channel where the taps allow (_row_reuse; "auto" takes them
    # too), or along output channels (fc_conv_ctiles)
    "tiles": ("auto", "positions", "rows", "channels"),
    # the padded input: one copy of all of it (_prepare), or each task its own rows or
    # images (_conv_tasks, _wgrad_task; not the channels-last weight gradient)
    "prepare": ("auto", "whole", "per_task"),
    # the weight gradient: vectorised along output columns (fc_conv_wgrad) or along output
    # channels (fc_conv_wgcl; ungrouped layers only)
    "wgrad": ("auto", "rows", "channels"),
}

cdef enum:
    AUTO = 0
    TILES_POSITIONS = 1
    TILES_ROWS = 2
    TILES_CHANNELS = 3
    PREPARE_WHOLE = 1
    PREPARE_PER_TASK = 2
    WGRAD_ROWS = 1
    WGRAD_CHANNELS = 2

cdef struct _Forced:
    int tiles, prepare, wgrad   # codes of ALGORITHMS' options


cdef _Forced _forced(algorithm) except *:
    """What `algorithm` forces: None (nothing), or a dict from some of ALGORITHMS' keys to
    one of their options each."""
    cdef _Forced forced = _Forced(AUTO, AUTO, AUTO)
    if algorithm is None:
        return forced
    if not isinstance(algorithm, dict):
        raise TypeError(f"algorithm must be None or a dict, got {type(algorithm).__name__} "
                        f"{algorithm!r}")
    for key, value in algorithm.items():
        if key not in ALGORITHMS:
            raise ValueError(f"algorithm's keys must be among "
                             f"{', '.join(map(repr, ALGORITHMS))}, got {key!r}")
        if not isinstance(value, str) or value not in ALGORITHMS[key]:
            raise ValueError(f"algorithm[{key!r}] must be one of "
                             f"{', '.join(map(repr, ALGORITHMS[key]))}, got {value!r}")
    forced.tiles = ALGORITHMS["tiles"].index(algorithm.get("tiles", "auto"))
    forced.prepare = ALGORITHMS["prepare"].index(algorithm.get("prepare", "auto"))
    forced.wgrad = ALGORITHMS["wgrad"].index(algorithm.get("wgrad", "auto"))
    return forced


# ------------------------------------------------------------------- forward, data gradient

cdef inline bint _is_pointwise(Py_ssize_t R, Py_ssize_t S, Py_ssize_t sh, Py_ssize_t sw,
                               Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t H, Py_ssize_t W,
                               Py_ssize_t P, Py_ssize_t Q):
    # Whether output pixel (p, q) is input pixel (p, q) times the weights, the panel path's
    # case: 1x1, stride 1, no padding, and planes of one size (fastcnn.functional passes
    # stride 1 along an axis with one output whatever the caller's was, so the stride alone
    # does not tell).
    return R == 1 and S == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and H == P \
        and W == Q


cdef int _pick_tiles(int forced, Py_ssize_t Kg, Py_ssize_t sums, Py_ssize_t Q,
                     Py_ssize_t row_step, Py_ssize_t lanes, Py_ssize_t width):
    """The tiles of a forward or data-gradient pass (TILES_*): the forced ones, else channel
    tiles where they win, else tiles of positions with row tiles where the taps allow."""
    if forced != AUTO:
        return forced
    if _channel_tiles_win(Kg, sums, Q, row_step, lanes, width):
        return TILES_CHANNELS
    return TILES_ROWS


cdef bint _channel_tiles_win(Py_ssize_t Kg, Py_ssize_t sums, Py_ssize_t Q,
                             Py_ssize_t row_step, Py_ssize_t lanes, Py_ssize_t width):
    """Whether channel tiles (fc_conv_ctiles) should beat tiles of output positions
    (fc_conv_tiles, `width` positions a tile) for Kg output channels per group, each a sum of
    `sums` (channel, tap) pairs, over output rows of Q columns row_step apart in the input:
    by the share of vector lanes each fills. Rows of positions waste the columns between
    rows where tiles run across row ends, and otherwise the last vector's idle lanes; channel
    tiles waste the last vector's idle channels, and need a fifth more of the lanes filled
    to win, as their weights, 16 channels at a time, fit less well in L1. Both need sums of
    a few vectors (channel tiles store each output on its own)."""
    if Kg < lanes or sums < 4 * lanes:
        return False
    cdef bint across = row_step < (Q + width - 1) // width * width  # as fc_conv_tiles decides
    cdef double fill_positions = (<double>Q / row_step if across else
                                  <double>Q / ((Q + lanes - 1) // lanes * lanes))
    cdef double fill_channels = <double>Kg / ((Kg + lanes - 1) // lanes * lanes)
    return fill_channels > 1.2 * fill_positions


cdef Py_ssize_t _row_reuse(const Py_ssize_t[::1] taps, Py_ssize_t RR, Py_ssize_t row_step):
    """RR where the taps are RR rows of taps, each row's offsets the first row's plus
    row_step per row (an input row then serves RR output rows: the row tiles of
    fc_conv_tiles for one output channel, which _conv_tasks then hands the taps column by
    column), else 0."""
    cdef Py_ssize_t n = taps.shape[0], t
    if RR < 2 or n % RR:
        return 0
    for t in range(n):
        if taps[t] != taps[t % (n // RR)] + t // (n // RR) * row_step:
            return 0
    return RR


cdef bint _own_rows(int forced, Py_ssize_t outputs_per_group):
    """Whether each task prepares its own rows: as forced, else when a group's outputs are
    one channel block, so that no other task reads them and they stay in cache (with more
    blocks each task would pad the same rows again)."""
    return forced == PREPARE_PER_TASK or forced == AUTO and outputs_per_group <= FC_KB


cdef Py_ssize_t _task_rows(Py_ssize_t P, Py_ssize_t Q, bint own, Py_ssize_t tasks,
                           Py_ssize_t plane_elements, int n_threads):
    """Output rows per forward task: about TILE_PIXELS pixels. With own rows each task also
    pads the rows below its block that its taps reach, which the next block pads again:
    where the images are small (a task's padded planes, plane_elements, at most
    OWN_PLANE_ELEMENTS) and there are tasks enough without splitting them (`tasks`, a block
    of rows each), a task takes all P rows instead."""
    if own and tasks >= 4 * n_threads and plane_elements <= OWN_PLANE_ELEMENTS:
        return P
    return max(1, min(P, TILE_PIXELS // max(Q, 1)))


# ------------------------------------------------------------------------- weight gradient

cdef bint _pick_channels_last(int forced, Py_ssize_t groups, Py_ssize_t K, Py_ssize_t pairs,
                              Py_ssize_t lanes):
    """Whether the weight gradient runs along output channels (fc_conv_wgcl, ungrouped
    layers only): as forced, else where _channels_last_wins."""
    return groups == 1 and (forced == WGRAD_CHANNELS or forced == AUTO
                            and _channels_last_wins(K, pairs, lanes))


cdef bint _channels_last_wins(Py_ssize_t K, Py_ssize_t pairs, Py_ssize_t lanes):
    """Whether fc_conv_wgcl should beat fc_conv_wgrad: K output channels fill its vectors
    (at least one whole vector, at most a third of the lanes idle), and there are enough
    (channel, tap) pairs to pay for transposing the output gradient (with few, as 3 channels
    x 3x3, the transposition takes longer than the sums)."""
    return (K % lanes == 0 or K >= 2 * lanes) and pairs >= 4 * lanes


cdef bint _own_images(int forced, Py_ssize_t Kg, Py_ssize_t block):
    """Whether each weight-gradient task (fc_conv_wgrad, blocks of `block` output channels)
    pads its own images: as forced, else as the forward's tasks do (_own_rows), and where
    one or two blocks cover a group: two blocks padding the same images in cache beat one
    padded copy through memory, more do not."""
    return forced == PREPARE_PER_TASK or _own_rows(forced, Kg) and Kg <= 2 * block


cdef (Py_ssize_t, Py_ssize_t) _wgrad_blocks(Py_ssize_t N, Py_ssize_t P, Py_ssize_t Qp):
    """(rb, m): fc_conv_wgrad sums blocks of rb rows of m images, about WGRAD_PIXELS
    output-gradient pixels (rows padded to Qp), so that its tiles add up their lanes once per
    block."""
    return (max(1, min(P, WGRAD_PIXELS // Qp)),
            max(1, min((N + NSLOT - 1) // NSLOT, WGRAD_PIXELS // (P * Qp))))


cdef inline bint _prefetch_next(Py_ssize_t m, Py_ssize_t kb, Py_ssize_t P, Py_ssize_t Q,
                                Py_ssize_t x_image_elements,
                                Py_ssize_t itemsize) noexcept nogil:
    # Whether a weight-gradient task fetches its next round's images while it sums the
    # current ones: where they fit in L2 beside them (m images of kb output-gradient planes
    # and, padding its own images, x_image_elements of the input each).
    return m * (kb * P * Q + x_image_elements) * itemsize <= PREFETCH_BYTES


cdef (Py_ssize_t, Py_ssize_t) _wgcl_blocks(Py_ssize_t N, Py_ssize_t P, Py_ssize_t Q):
    """(rb, m): fc_conv_wgcl sums blocks of rb rows of m images, about WGCL_PIXELS pixels,
    whose transposed output gradient stays in cache while every block of channels reads
    it."""
    if P * Q <= WGCL_PIXELS:
        return P, max(1, min((N + NSLOT - 1) // NSLOT, WGCL_PIXELS // (P * Q)))
    return max(1, WGCL_PIXELS // Q), 1


cdef Py_ssize_t _wgcl_shares(Py_ssize_t pairs, Py_ssize_t slots, int n_threads):
    """Shares of the (channel, tap) pairs per slot, so that every thread has a task where the
    slots are fewer (each share transposes the same output gradient again)."""
    return max(1, min(pairs, (n_threads + slots - 1) // slots))
