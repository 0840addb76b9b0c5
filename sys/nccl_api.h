/*
 * The subset of the NCCL / RCCL C API that collbench calls, declared for this project from NCCL's
 * public API documentation and ABI (values and signatures are facts of the ABI; no code is copied).
 * RCCL exports the same API from librccl.so.1, so one declaration serves both libraries.
 *
 * build.rs runs bindgen over this file with dynamic loading: nothing here is linked at build time.
 *
 * tests/abi.rs compiles this file after the real nccl.h (PyPI's wheel) and after the real rccl.h (RCCL
 * 5.4.3 and 7.2.4, Debian) with COLLBENCH_NCCL_TYPES_FROM_NCCL_H defined: our type definitions are then
 * skipped, every prototype below must agree with the real one (a conflicting declaration is a compile
 * error), and the _Static_asserts in that test compare our enum values and struct sizes with the real
 * ones. Against rccl.h the test declares `typedef hipStream_t cudaStream_t;` first: both are pointers to
 * an opaque stream, which is all our bindings pass.
 */
#ifndef COLLBENCH_NCCL_API_H
#define COLLBENCH_NCCL_API_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef COLLBENCH_NCCL_TYPES_FROM_NCCL_H

/* The CUDA stream type as CUDA declares it; RCCL's hipStream_t is the same kind of opaque pointer. */
typedef struct CUstream_st *cudaStream_t;

typedef struct ncclComm *ncclComm_t;

/* Communicator options. Its layout grows with NCCL versions, so the prototypes take it opaque and we
 * pass ncclConfigPrefix_v22800 (below) in its place. */
typedef struct ncclConfig_opaque ncclConfig_t;

/* A symmetric-memory window (ncclCommWindowRegister, NCCL 2.27 and later). */
typedef struct ncclWindow_vidmem *ncclWindow_t;

/* Where a pre-multiplied sum's scalar lives (ncclRedOpCreatePreMulSum, NCCL 2.11 and later). */
typedef enum {
    ncclScalarDevice = 0,
    ncclScalarHostImmediate = 1
} ncclScalarResidence_t;

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

/* Result codes. Rust sees them as a newtype: a newer library may return a code not listed here. */
typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
    ncclTimeout = 8,
    ncclNumResults = 9
} ncclResult_t;

/* Built-in reduction operators; values from ncclNumOps up are user-created operators. */
typedef enum {
    ncclSum = 0,
    ncclProd = 1,
    ncclMax = 2,
    ncclMin = 3,
    ncclAvg = 4,
    ncclNumOps = 5,
    /* Keeps the enum int-sized, as in NCCL. */
    ncclMaxRedOp = 0x7fffffff
} ncclRedOp_t;

typedef enum {
    ncclInt8 = 0,
    ncclUint8 = 1,
    ncclInt32 = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6,
    ncclFloat32 = 7,
    ncclFloat64 = 8,
    ncclBfloat16 = 9,
    /* NCCL 2.24 and later, on devices that support FP8 (Hopper and newer). */
    ncclFloat8e4m3 = 10,
    ncclFloat8e5m2 = 11,
    ncclNumTypes = 12
} ncclDataType_t;

#else
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE < 21400
/* ncclConfig_t came with NCCL 2.14: an older real header (RCCL 5.4's, NCCL 2.13) has none, and the
 * prototypes that name it (ncclCommInitRankConfig, ncclCommSplit) are absent from such a library. */
typedef struct ncclConfig_opaque ncclConfig_t;
#endif
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE < 22700
/* ncclWindow_t came with NCCL 2.27: the same for an older real header and the window calls. */
typedef struct ncclWindow_vidmem *ncclWindow_t;
#endif
#endif /* COLLBENCH_NCCL_TYPES_FROM_NCCL_H */

/* ncclConfig_t is versioned and append-only: NCCL copies min(size, its own sizeof) bytes over
 * NCCL_CONFIG_INITIALIZER's defaults and ignores the fields newer than `version`. This is its layout
 * as of NCCL 2.28 (ncclConfig_v22800), the fields collbench sets (CTAPolicy 2.27, nvlinkCentricSched
 * 2.28) and every one before them; tests/abi.rs checks each offset against the real nccl.h. */
typedef struct {
    size_t size;
    unsigned int magic;
    unsigned int version;
    int blocking;
    int cgaClusterSize;
    int minCTAs;
    int maxCTAs;
    const char *netName;
    int splitShare;
    int trafficClass;
    const char *commName;
    int collnetEnable;
    int CTAPolicy;
    int shrinkShare;
    int nvlsCTAs;
    int nChannelsPerNetPeer;
    int nvlinkCentricSched;
} ncclConfigPrefix_v22800;

/* The config's magic, and the value of a field left to the library. */
#define NCCL_API_MAGIC 0xcafebeef
#define NCCL_CONFIG_UNDEF_INT INT_MIN

/* CTAPolicy values (NCCL 2.27; ZERO 2.28). */
#define NCCL_CTA_POLICY_DEFAULT 0x00
#define NCCL_CTA_POLICY_EFFICIENCY 0x01
#define NCCL_CTA_POLICY_ZERO 0x02

/* Window flags: symmetric registration for collectives. */
#define NCCL_WIN_DEFAULT 0x00
#define NCCL_WIN_COLL_SYMMETRIC 0x01

/* Version and errors */
ncclResult_t ncclGetVersion(int *version);
const char *ncclGetErrorString(ncclResult_t result);
/* NCCL 2.13 and later; may be NULL-returning or absent in older libraries (looked up as optional). */
const char *ncclGetLastError(ncclComm_t comm);

/* Communicators */
ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId);
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank);
ncclResult_t ncclCommInitAll(ncclComm_t *comm, int ndev, const int *devlist);
/* NCCL 2.14 and later. */
ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank,
                                    ncclConfig_t *config);
ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *newcomm, ncclConfig_t *config);
ncclResult_t ncclCommFinalize(ncclComm_t comm);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommAbort(ncclComm_t comm);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError);
ncclResult_t ncclCommCount(const ncclComm_t comm, int *count);
ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *device);
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank);

/* Memory (NCCL 2.19 and later) and buffer registration (NCCL 2.19 and later) */
ncclResult_t ncclMemAlloc(void **ptr, size_t size);
ncclResult_t ncclMemFree(void *ptr);
ncclResult_t ncclCommRegister(const ncclComm_t comm, void *buff, size_t size, void **handle);
ncclResult_t ncclCommDeregister(const ncclComm_t comm, void *handle);
/* Symmetric windows (NCCL 2.27 and later; the buffers must come from ncclMemAlloc). */
ncclResult_t ncclCommWindowRegister(ncclComm_t comm, void *buff, size_t size, ncclWindow_t *win, int winFlags);
ncclResult_t ncclCommWindowDeregister(ncclComm_t comm, ncclWindow_t win);

/* User-defined reductions (NCCL 2.11 and later): the sum of each rank's input times its scalar. */
ncclResult_t ncclRedOpCreatePreMulSum(ncclRedOp_t *op, void *scalar, ncclDataType_t datatype,
                                      ncclScalarResidence_t residence, ncclComm_t comm);
ncclResult_t ncclRedOpDestroy(ncclRedOp_t op, ncclComm_t comm);

/* Groups */
ncclResult_t ncclGroupStart(void);
ncclResult_t ncclGroupEnd(void);

/* Collectives */
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount, ncclDataType_t datatype,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                        int root, ncclComm_t comm, cudaStream_t stream);
/* NCCL 2.28 and later; absent symbols mean an older library and the grouped send/recv path. */
ncclResult_t ncclAlltoAll(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                          ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclGather(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
                        ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclScatter(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
                         ncclComm_t comm, cudaStream_t stream);

/* RCCL's own entry points: declared for our bindings, and checked when the real header is rccl.h (which
 * defines RCCL_ALLTOALLV); nccl.h has none of them. */
#if !defined(COLLBENCH_NCCL_TYPES_FROM_NCCL_H) || defined(RCCL_ALLTOALLV)
/* RCCL's spelling of all-to-all. */
ncclResult_t ncclAllToAll(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                          ncclComm_t comm, cudaStream_t stream);
/* RCCL's all-to-all with per-peer counts and displacements, in elements. */
ncclResult_t ncclAllToAllv(const void *sendbuff, const size_t sendcounts[], const size_t sdispls[],
                           void *recvbuff, const size_t recvcounts[], const size_t rdispls[],
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream);
#endif

/* RCCL 7's tuning queries (rccl-tests' -A), exported by librccl.so.1 but declared in no public header, so
 * no ABI check can compare them: declared from RCCL's source. Which algorithm, protocol and channel count
 * RCCL picks for one collective of `count` elements on `comm`; `coll` is RCCL's internal ncclFunc_t, an
 * int-sized enum whose first values are NCCL's (COLLBENCH_RCCL_FUNC_* below). */
#define COLLBENCH_RCCL_FUNC_BROADCAST 0
#define COLLBENCH_RCCL_FUNC_REDUCE 1
#define COLLBENCH_RCCL_FUNC_ALL_GATHER 2
#define COLLBENCH_RCCL_FUNC_REDUCE_SCATTER 3
#define COLLBENCH_RCCL_FUNC_ALL_REDUCE 4
ncclResult_t rcclGetAlgoInfo(ncclComm_t comm, int coll, uint64_t count, ncclDataType_t dataType, int collNetSupport,
                             int nvlsSupport, int numPipeOps, int *algo, int *protocol, int *maxChannels);
ncclResult_t rcclGetAlgoName(int algo, const char **algoName);
ncclResult_t rcclGetProtocolName(int protocol, const char **protocolName);

/* Point to point (NCCL 2.7 and later) */
ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream);
ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* COLLBENCH_NCCL_API_H */
