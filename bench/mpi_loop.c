/* The reference for collbench's overhead benchmark: the smallest honest MPI timing loop.
 * Usage: mpi_loop COLLECTIVE BYTES ITERS WARMUP [in_place]
 *   COLLECTIVE: all_reduce all_gather reduce_scatter broadcast reduce all_to_all sendrecv gather scatter
 * Prints the mean over ranks of (wall time of ITERS back-to-back operations / ITERS), in microseconds,
 * which is what collbench's default time column reports for the mpi backend (float, sum, root 0;
 * out-of-place, or in place as collbench's mpi backend does it with `in_place`). Each operation is the MPI call collbench's mpi backend makes for it, on buffers of the
 * shapes nccl-tests gives a size (BYTES is the size column: chunk = BYTES / 4 / ranks floats, rounded
 * down to 16 bytes, for the collectives that split it), so the two differ only by what collbench adds
 * around the call. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum collective { ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, BROADCAST, REDUCE, ALL_TO_ALL, SENDRECV, GATHER, SCATTER };
static const char *names[] = {"all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce",
                              "all_to_all", "sendrecv",   "gather",         "scatter"};

static enum collective which;
static int count, chunk, to, from, rank, ranks;
static float *send, *recv;

/* In place as collbench's mpi backend: MPI_IN_PLACE where MPI has it (the root's side of rooted ones),
 * the receive buffer itself elsewhere, each rank's block at rank x chunk. */
static void one_in_place_operation(void) {
    float *mine = recv + (size_t)rank * chunk;
    switch (which) {
    case ALL_REDUCE:
        MPI_Allreduce(MPI_IN_PLACE, recv, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        break;
    case ALL_GATHER:
        MPI_Allgather(MPI_IN_PLACE, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, MPI_COMM_WORLD);
        break;
    case REDUCE_SCATTER:
        MPI_Reduce_scatter_block(MPI_IN_PLACE, recv, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        break;
    case BROADCAST:
        MPI_Bcast(recv, count, MPI_FLOAT, 0, MPI_COMM_WORLD);
        break;
    case REDUCE:
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : recv, recv, count, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
        break;
    case ALL_TO_ALL:
        MPI_Alltoall(MPI_IN_PLACE, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, MPI_COMM_WORLD);
        break;
    case SENDRECV:
        MPI_Sendrecv_replace(recv, count, MPI_FLOAT, to, 0, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        break;
    case GATHER:
        MPI_Gather(rank == 0 ? MPI_IN_PLACE : mine, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, 0, MPI_COMM_WORLD);
        break;
    case SCATTER:
        MPI_Scatter(recv, chunk, MPI_FLOAT, rank == 0 ? MPI_IN_PLACE : mine, chunk, MPI_FLOAT, 0,
                    MPI_COMM_WORLD);
        break;
    }
}

static void one_operation(void) {
    switch (which) {
    case ALL_REDUCE:
        MPI_Allreduce(send, recv, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        break;
    case ALL_GATHER:
        MPI_Allgather(send, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, MPI_COMM_WORLD);
        break;
    case REDUCE_SCATTER:
        MPI_Reduce_scatter_block(send, recv, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        break;
    case BROADCAST:
        /* NCCL's out-of-place broadcast fills the root's receive buffer too: the root copies. */
        MPI_Bcast(rank == 0 ? send : recv, count, MPI_FLOAT, 0, MPI_COMM_WORLD);
        if (rank == 0) memcpy(recv, send, (size_t)count * sizeof(float));
        break;
    case REDUCE:
        MPI_Reduce(send, recv, count, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
        break;
    case ALL_TO_ALL:
        MPI_Alltoall(send, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, MPI_COMM_WORLD);
        break;
    case SENDRECV:
        MPI_Sendrecv(send, count, MPI_FLOAT, to, 0, recv, count, MPI_FLOAT, from, 0, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        break;
    case GATHER:
        MPI_Gather(send, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, 0, MPI_COMM_WORLD);
        break;
    case SCATTER:
        MPI_Scatter(send, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, 0, MPI_COMM_WORLD);
        break;
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int known = -1;
    const int in_place = argc == 6 && strcmp(argv[5], "in_place") == 0;
    for (int i = 0; (argc == 5 || in_place) && i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(argv[1], names[i]) == 0) known = i;
    if (known < 0) {
        fprintf(stderr, "usage: mpi_loop all_reduce|all_gather|reduce_scatter|broadcast|reduce|all_to_all|"
                        "sendrecv|gather|scatter BYTES ITERS WARMUP [in_place]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    void (*operation)(void) = in_place ? one_in_place_operation : one_operation;
    which = (enum collective)known;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    const long bytes = atol(argv[2]);
    const long iters = atol(argv[3]), warmup = atol(argv[4]);
    count = (int)(bytes / sizeof(float));
    chunk = (count / ranks) / 4 * 4; /* 16 bytes of floats */
    /* Buffers as large as the largest operand (n chunks, or the whole count). */
    const size_t elements = (size_t)(count > chunk * ranks ? count : chunk * ranks);
    /* On a page, as collbench's mpi backend places its buffers: memcpy's cost depends on alignment. */
    if (posix_memalign((void **)&send, 4096, elements * sizeof(float)) != 0 ||
        posix_memalign((void **)&recv, 4096, elements * sizeof(float)) != 0) {
        fprintf(stderr, "mpi_loop: cannot allocate %zu bytes\n", elements * sizeof(float));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* Touch every page, as collbench does: untouched memory reads as one shared zero page. */
    for (size_t i = 0; i < elements; i++) send[i] = (float)(i % 4);
    memset(recv, 0xFF, elements * sizeof(float));
    to = (rank + 1) % ranks;
    from = (rank + ranks - 1) % ranks;

    for (long i = 0; i < warmup; i++) operation();
    MPI_Barrier(MPI_COMM_WORLD);
    const double start = MPI_Wtime();
    for (long i = 0; i < iters; i++) operation();
    double per_op = (MPI_Wtime() - start) / (double)iters * 1e6, sum = 0;
    MPI_Reduce(&per_op, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("%.4f\n", sum / ranks);
    free(send);
    free(recv);
    MPI_Finalize();
    return 0;
}
