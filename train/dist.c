#include "dist.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

#ifdef FVLM_MPI
#include <mpi.h>
#endif

/* the reduction buckets: large enough to keep the per-message latency small
 * against the bandwidth term, small enough to start early in the backward */
enum { BUCKET_FLOATS = 1 << 20 };

int dist_built_with_mpi(void)
{
#ifdef FVLM_MPI
    return 1;
#else
    return 0;
#endif
}

int dist_launched_size(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            long n = strtol(v, NULL, 10);
            if (n > 1)
                return n > 1 << 20 ? 1 << 20 : (int)n;
        }
    }
    return 1;
}

int dist_init(Dist *d, int *argc, char ***argv, FvErr *e)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    int launched = dist_launched_size();
    if (launched <= 1)
        return 0;
#ifdef FVLM_MPI
    int provided;
    /* loader threads never call MPI: the training thread alone does */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return err_set(e, FV_EIO, "MPI_Init failed (started as %d ranks)", launched);
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    /* a failed collective returns its code, so the rank can say what failed */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    return 0;
#else
    (void)argc;
    (void)argv;
    return err_set(e, FV_EUSAGE, "started as %d MPI ranks, but this fvlm was built without MPI: "
                   "each rank would train a model of its own. Rebuild with MPI (Debian: apt-get "
                   "install libopenmpi-dev openmpi-bin; meson setup --reconfigure build "
                   "-Dmpi=enabled), or run fvlm train without mpirun", launched);
#endif
}

void dist_finish(Dist *d)
{
#ifdef FVLM_MPI
    if (d->mpi)
        MPI_Finalize();
#endif
    free(d->req);
    d->req = NULL;
    d->mpi = 0;
}

void dist_abort(Dist *d, int code)
{
#ifdef FVLM_MPI
    if (d->mpi)
        MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d;
    (void)code;
#endif
}

#ifdef FVLM_MPI
static int mpi_fail(Dist *d, int rc, const char *what, FvErr *e)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return err_set(e, FV_EIO, "rank %d of %d: %s failed: %.*s (another rank may have ended)",
                   d->rank, d->size, what, len, msg);
}
#endif

int dist_gather_int(Dist *d, int mine, int *all, FvErr *e)
{
    if (d->size == 1) {
        all[0] = mine;
        return 0;
    }
#ifdef FVLM_MPI
    double t0 = now_seconds();
    int rc = MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
    d->comm_s += now_seconds() - t0;
    return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "MPI_Allgather", e);
#else
    return err_set(e, FV_EINTERNAL, "no MPI");
#endif
}

static void displacements(const Dist *d, const int *counts, int *displs)
{
    int at = 0;
    for (int r = 0; r < d->size; r++) {
        displs[r] = at;
        at += counts[r];
    }
}

/* The all-gather of ints (is_float 0) or floats (1): the one body of both
 * public functions, which differ only in the element type. */
static int gather(Dist *d, const void *mine, int n, void *all, const int *counts, int *displs,
                  int is_float, FvErr *e)
{
    size_t elem = is_float ? sizeof(float) : sizeof(int);
    displacements(d, counts, displs);
    if (d->size == 1) {
        memmove(all, mine, (size_t)n * elem);
        return 0;
    }
#ifdef FVLM_MPI
    MPI_Datatype type = is_float ? MPI_FLOAT : MPI_INT;
    double t0 = now_seconds();
    int rc = MPI_Allgatherv(mine, n, type, all, counts, displs, type, MPI_COMM_WORLD);
    d->comm_s += now_seconds() - t0;
    d->gather_bytes += (double)(displs[d->size - 1] + counts[d->size - 1]) * (double)elem;
    return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "MPI_Allgatherv", e);
#else
    return err_set(e, FV_EINTERNAL, "no MPI");
#endif
}

int dist_gather_ints(Dist *d, const int *mine, int n, int *all, const int *counts, int *displs,
                     FvErr *e)
{
    return gather(d, mine, n, all, counts, displs, 0, e);
}

int dist_gather_floats(Dist *d, const float *mine, int n, float *all, const int *counts,
                       int *displs, FvErr *e)
{
    return gather(d, mine, n, all, counts, displs, 1, e);
}

int dist_any(Dist *d, int flag)
{
    if (d->size == 1)
        return flag != 0;
#ifdef FVLM_MPI
    int in = flag != 0, out = in;
    double t0 = now_seconds();
    if (MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        out = 1; /* the job is ending: stop */
    d->comm_s += now_seconds() - t0;
    return out;
#else
    return flag != 0;
#endif
}

int dist_sum_start(Dist *d, float *x, size_t n, FvErr *e)
{
    if (d->size == 1 || n == 0)
        return 0;
#ifdef FVLM_MPI
    double t0 = now_seconds();
    for (size_t at = 0; at < n; at += BUCKET_FLOATS) {
        int len = (int)(n - at < BUCKET_FLOATS ? n - at : BUCKET_FLOATS);
        if (arr_reserve(&d->req, &d->cap_req, d->n_req, sizeof(MPI_Request), 16))
            return err_set(e, FV_ENOMEM, "out of memory");
        MPI_Request *rq = (MPI_Request *)d->req + d->n_req;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, x + at, len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, rq);
        if (rc != MPI_SUCCESS)
            return mpi_fail(d, rc, "MPI_Iallreduce", e);
        d->n_req++;
        d->sum_bytes += (double)len * sizeof(float);
    }
    /* let the reductions move while the backward pass goes on: Open MPI
     * progresses non-blocking collectives only inside MPI calls */
    int done;
    MPI_Testall(d->n_req, d->req, &done, MPI_STATUSES_IGNORE);
    d->comm_s += now_seconds() - t0;
    return 0;
#else
    (void)x;
    return err_set(e, FV_EINTERNAL, "no MPI");
#endif
}

int dist_sum_floats(Dist *d, float *x, size_t n, FvErr *e)
{
    if (d->size == 1 || n == 0)
        return 0;
#ifdef FVLM_MPI
    double t0 = now_seconds();
    for (size_t at = 0; at < n; at += BUCKET_FLOATS) {
        int len = (int)(n - at < BUCKET_FLOATS ? n - at : BUCKET_FLOATS);
        int rc = MPI_Allreduce(MPI_IN_PLACE, x + at, len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(d, rc, "MPI_Allreduce", e);
        d->gather_bytes += (double)len * sizeof(float);
    }
    d->comm_s += now_seconds() - t0;
    return 0;
#else
    (void)x;
    return err_set(e, FV_EINTERNAL, "no MPI");
#endif
}

int dist_sum_doubles(Dist *d, double *x, int n, FvErr *e)
{
    if (d->size == 1 || n == 0)
        return 0;
#ifdef FVLM_MPI
    double t0 = now_seconds();
    int rc = MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    d->comm_s += now_seconds() - t0;
    return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "MPI_Allreduce", e);
#else
    (void)x;
    return err_set(e, FV_EINTERNAL, "no MPI");
#endif
}

int dist_sum_wait(Dist *d, FvErr *e)
{
    if (!d->n_req)
        return 0;
#ifdef FVLM_MPI
    double t0 = now_seconds();
    int rc = MPI_Waitall(d->n_req, d->req, MPI_STATUSES_IGNORE);
    d->n_req = 0;
    d->comm_s += now_seconds() - t0;
    return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "MPI_Waitall (gradient sums)", e);
#else
    return err_set(e, FV_EINTERNAL, "no MPI");
#endif
}
