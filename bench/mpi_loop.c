/* The reference for collbench's overhead benchmark: the smallest honest MPI timing loop.
 * Usage: mpi_loop all_reduce|all_to_all|sendrecv BYTES ITERS WARMUP
 * Prints the mean over ranks of (wall time of ITERS back-to-back operations / ITERS), in microseconds,
 * which is what collbench's default time column reports for the mpi backend (out-of-place). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int allreduce, alltoall, count, to, from, ranks;
static float *send, *recv;

static void one_operation(void) {
    if (allreduce)
        MPI_Allreduce(send, recv, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    else if (alltoall)
        /* BYTES is the whole buffer, as collbench's size column: each peer gets BYTES / ranks. */
        MPI_Alltoall(send, count / ranks, MPI_FLOAT, recv, count / ranks, MPI_FLOAT, MPI_COMM_WORLD);
    else
        MPI_Sendrecv(send, count, MPI_FLOAT, to, 0, recv, count, MPI_FLOAT, from, 0, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc != 5) {
        fprintf(stderr, "usage: mpi_loop all_reduce|all_to_all|sendrecv BYTES ITERS WARMUP\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    allreduce = strcmp(argv[1], "all_reduce") == 0;
    alltoall = strcmp(argv[1], "all_to_all") == 0;
    ranks = size;
    const long bytes = atol(argv[2]);
    const int iters = atoi(argv[3]), warmup = atoi(argv[4]);
    count = (int)(bytes / sizeof(float));
    send = calloc((size_t)count, sizeof(float));
    recv = calloc((size_t)count, sizeof(float));
    /* Touch every page, as collbench does: untouched calloc memory reads as one shared zero page. */
    for (int i = 0; i < count; i++) send[i] = (float)(i % 4);
    memset(recv, 0xFF, (size_t)count * sizeof(float));
    to = (rank + 1) % size;
    from = (rank + size - 1) % size;

    for (int i = 0; i < warmup; i++) one_operation();
    MPI_Barrier(MPI_COMM_WORLD);
    const double start = MPI_Wtime();
    for (int i = 0; i < iters; i++) one_operation();
    double per_op = (MPI_Wtime() - start) / iters * 1e6, sum = 0;
    MPI_Reduce(&per_op, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("%.3f\n", sum / size);
    free(send);
    free(recv);
    MPI_Finalize();
    return 0;
}
