/* dist: the processes of a data-parallel training run, over MPI.
 *
 * `mpirun -np N fvlm train ...` starts N processes (ranks); dist_init joins
 * them (MPI_Init) when the launcher's environment says there are several
 * (OMPI_COMM_WORLD_SIZE from Open MPI's mpirun, PMI_SIZE from Slurm's srun
 * and MPICH's launchers); a plain `fvlm train` never starts MPI. A build
 * without MPI (meson -Dmpi=disabled, or libopenmpi-dev missing) started as
 * N > 1 ranks refuses clearly instead of training N separate models.
 *
 * The collectives the trainer needs, each a thin wrapper that also counts
 * the time it blocked and the bytes it moved (for bench_train): gathers of
 * per-rank blocks in rank order, and the in-place sum of the gradients in
 * buckets started while the backward pass goes on (dist_sum_start) and
 * waited for before the optimiser (dist_sum_wait). With one rank every
 * call is a copy or nothing. */
#ifndef FVLM_DIST_H
#define FVLM_DIST_H

#include <stddef.h>

#include "error.h"

typedef struct Dist {
    int rank, size;
    int mpi;                   /* MPI_Init was called (dist_finish finalises) */
    double comm_s;             /* seconds spent in collectives, waiting included */
    double sum_bytes;          /* bytes summed across ranks (gradients), per rank */
    double gather_bytes;       /* bytes gathered (features, rows), received per rank */
    void *req;                 /* pending non-blocking sums (MPI_Request) */
    int n_req, cap_req;
} Dist;

/* 1 when fvlm was built with MPI. */
int dist_built_with_mpi(void);
/* The number of ranks the launcher's environment announces (1 when none). */
int dist_launched_size(void);
/* Joins the run's ranks (MPI_Init) when launched as several; else one rank. */
int dist_init(Dist *d, int *argc, char ***argv, FvErr *e);
/* Leaves MPI (after the last collective). */
void dist_finish(Dist *d);
/* Ends every rank of the job at once (one rank failed: the others would
 * wait for it forever). Returns only without MPI. */
void dist_abort(Dist *d, int code);

/* all (size ints) = every rank's `mine`, in rank order. */
int dist_gather_int(Dist *d, int mine, int *all, FvErr *e);
/* Concatenates each rank's n ints (counts[r] from rank r) into all, in rank
 * order; displs (size) is written. */
int dist_gather_ints(Dist *d, const int *mine, int n, int *all, const int *counts, int *displs,
                     FvErr *e);
/* The same for floats. */
int dist_gather_floats(Dist *d, const float *mine, int n, float *all, const int *counts,
                       int *displs, FvErr *e);
/* 1 on every rank when flag is set on any. */
int dist_any(Dist *d, int flag);
/* Starts summing x[0..n) in place across ranks (buckets of at most 4 MiB,
 * each its own non-blocking reduction); x must not be touched until
 * dist_sum_wait. */
int dist_sum_start(Dist *d, float *x, size_t n, FvErr *e);
/* Waits for every started sum. */
int dist_sum_wait(Dist *d, FvErr *e);
/* Sums x[0..n) in place across ranks now (blocking): floats, doubles. */
int dist_sum_floats(Dist *d, float *x, size_t n, FvErr *e);
int dist_sum_doubles(Dist *d, double *x, int n, FvErr *e);

#endif
